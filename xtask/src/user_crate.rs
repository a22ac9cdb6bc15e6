//! `cargo xtask user-crate`: builds and runs, in debug, a program in a crate of its
//! own outside the workspace that depends on `kiln` by path, as a new user's would
//! (`xtask/user_crate/main.rs`), and checks that it prints kiln's warning about
//! unoptimised kernels (the user's debug build does not inherit the workspace's
//! `opt-level` overrides) and trains, saves, reloads and predicts.

use std::path::Path;
use std::process::Command;

use crate::results::workspace_root;

/// The program, kept as a file so that it reads as a user's `main.rs`.
const MAIN: &str = include_str!("../user_crate/main.rs");

pub fn run() -> Result<(), String> {
    let root = workspace_root();
    let dir = root.join("target/user-crate");
    write_crate(&root, &dir)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    println!("xtask: building and running {} (debug)", dir.display());
    let output = Command::new(&cargo)
        .current_dir(&dir)
        .args(["run", "--quiet"])
        // Its own target folder: the workspace's is built with other profiles.
        .env("CARGO_TARGET_DIR", root.join("target/user-crate/target"))
        .env_remove("RUSTFLAGS")
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    if !output.status.success() {
        return Err(format!("the user crate failed ({})", output.status));
    }
    if !stderr.contains("compiled without optimisations") {
        return Err("the debug build did not warn that kiln's kernels are unoptimised".into());
    }
    if !stdout.contains("user crate: test accuracy") {
        return Err("the user crate did not report its accuracy".into());
    }
    println!("xtask: the user crate compiled, warned, trained, reloaded and predicted");
    Ok(())
}

/// Writes the crate: a manifest that depends on the workspace's `kiln` by path, and
/// the program.
fn write_crate(root: &Path, dir: &Path) -> Result<(), String> {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).map_err(|e| format!("cannot create {}: {e}", src.display()))?;
    let kiln = root.join("crates/kiln");
    let manifest = format!(
        "[package]\nname = \"digits\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\nkiln = {{ path = {:?} }}\n\n\
         # Not part of kiln's workspace.\n[workspace]\n",
        kiln.display().to_string()
    );
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(&dir.join("Cargo.toml"), &manifest)?;
    write(&src.join("main.rs"), MAIN)?;
    // The workspace's versions of every dependency, and its pinned toolchain.
    let lock = root.join("Cargo.lock");
    std::fs::copy(&lock, dir.join("Cargo.lock"))
        .map_err(|e| format!("cannot copy {}: {e}", lock.display()))?;
    let toolchain = root.join("rust-toolchain.toml");
    if toolchain.exists() {
        std::fs::copy(&toolchain, dir.join("rust-toolchain.toml"))
            .map_err(|e| format!("cannot copy {}: {e}", toolchain.display()))?;
    }
    Ok(())
}
