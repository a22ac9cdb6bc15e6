//! Writes the table of layer kinds and blocks that `model!`'s documentation shows,
//! from the same descriptions the macro reads (`kiln_shape::KINDS`, `src/blocks.rs`),
//! so the documentation cannot drift from what the macro accepts.

#[path = "src/blocks.rs"]
#[allow(dead_code)]
mod blocks;

use std::fmt::Write as _;

use kiln_shape::{ArgDef, KINDS};

fn arguments(args: &[ArgDef], positional: bool) -> String {
    let names: Vec<String> = args
        .iter()
        .filter(|a| a.positional == positional)
        .map(|a| a.name.to_string())
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!("`{}`", names.join(", "))
    }
}

fn defaults(args: &[ArgDef]) -> String {
    let defaults: Vec<String> = args
        .iter()
        .filter_map(|a| a.default.map(|d| format!("`{} = {d}`", a.name)))
        .collect();
    defaults.join(", ")
}

fn main() {
    println!("cargo::rerun-if-changed=src/blocks.rs");
    let mut table = String::from(
        "| kind | positional | named only | defaults | what it computes |\n|---|---|---|---|---|\n",
    );
    for kind in KINDS {
        let _ = writeln!(
            table,
            "| `{}` | {} | {} | {} | {} |",
            kind.name,
            arguments(kind.args, true),
            arguments(kind.args, false),
            defaults(kind.args),
            kind.about
        );
    }
    for block in blocks::BlockKind::ALL {
        let _ = writeln!(
            table,
            "| `{} {{ .. }}` (block) | {} | {} | {} | {} |",
            block.name(),
            arguments(block.args(), true),
            arguments(block.args(), false),
            defaults(block.args()),
            block.about()
        );
    }
    let out = std::env::var_os("OUT_DIR").map(std::path::PathBuf::from);
    if let Some(out) = out
        && let Err(err) = std::fs::write(out.join("kinds.md"), table)
    {
        println!("cargo::error=cannot write the table of layer kinds: {err}");
    }
}
