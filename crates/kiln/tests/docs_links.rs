//! The README stays short enough to read in five minutes, and every relative link in
//! it and in `docs/` points to a file or folder that exists.

// A file that cannot be read fails the test, with the reason.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The targets of the markdown links `[text](target)` in `text`, without anchors.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            let target = &rest[..end];
            let target = target.split('#').next().unwrap_or_default();
            // Skips web addresses and rustdoc's paths (`crate::data::Dataset`).
            let relative = !target.contains("://") && !target.contains("::");
            if !target.is_empty() && relative && !target.contains(' ') {
                targets.push(target.to_string());
            }
            rest = &rest[end..];
        }
    }
    targets
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut folders = vec![root().join("docs")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("docs/ is readable") {
            let path = entry.expect("a docs entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn the_readme_is_at_most_about_twelve_kilobytes() {
    let len = std::fs::metadata(root().join("README.md"))
        .expect("README.md")
        .len();
    assert!(
        len <= 12 * 1024,
        "README.md is {len} bytes: move detail to docs/"
    );
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let mut broken = Vec::new();
    let files = markdown_files();
    assert!(files.len() >= 7, "README.md and the docs: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a markdown file");
        let folder = file.parent().expect("a folder");
        for target in link_targets(&text) {
            if !folder.join(&target).exists() {
                broken.push(format!("{}: {target}", file.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to nothing:\n{}",
        broken.join("\n")
    );
}

#[test]
fn links_are_found_with_and_without_anchors() {
    let found =
        link_targets("see [a](docs/A.md#x), [b](https://x.y) and [c](#local) or [d](e/f.md)");
    assert_eq!(found, ["docs/A.md", "e/f.md"]);
}
