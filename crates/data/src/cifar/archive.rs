//! The official archive `cifar-10-binary.tar.gz`: reading its data files, and
//! extracting them into the cache, atomically (a temporary folder renamed into place
//! once every file was read and verified).

use std::path::{Path, PathBuf};

use super::{ARCHIVE_FOLDER, Cifar10, Member, assemble, parse_raw};
use crate::dataset::InMemory;
use crate::error::{Error, Result};
use crate::read;

/// The training and test sets from the official archive at `path` (`.tar.gz`), each
/// data file checked against its published MD5.
pub fn load_archive(path: &Path) -> Result<(InMemory, InMemory)> {
    Cifar10::official().load_archive(path)
}

impl Cifar10 {
    /// The training and test sets from the archive at `path` (`.tar.gz` or `.tar`).
    pub fn load_archive(&self, path: &Path) -> Result<(InMemory, InMemory)> {
        let files = read_members(self, path)?;
        decode_all(self, files, path)
    }
}

/// Reads and verifies the data files, then writes them to `folder` (through a
/// temporary folder beside it) and decodes them.
pub(super) fn extract(
    spec: &Cifar10,
    archive: &Path,
    folder: &Path,
) -> Result<(InMemory, InMemory)> {
    let files = read_members(spec, archive)?;
    let parent = folder.parent().unwrap_or(folder);
    let temp = parent.join(format!(".{ARCHIVE_FOLDER}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&temp);
    std::fs::create_dir_all(&temp).map_err(|e| Error::io(&temp, e))?;
    let written = (|| {
        for (member, bytes) in spec.train.iter().chain([&spec.test]).zip(&files) {
            let p = temp.join(&member.name);
            std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
        }
        // Only called when `folder` lacks a file: an incomplete folder (files
        // deleted by hand) is replaced.
        if folder.is_dir() {
            let _ = std::fs::remove_dir_all(folder);
        }
        match std::fs::rename(&temp, folder) {
            Ok(()) => Ok(()),
            // Another process extracted it meanwhile: theirs is as good as ours.
            Err(_) if folder.is_dir() => Ok(()),
            Err(e) => Err(Error::io(folder, e)),
        }
    })();
    let _ = std::fs::remove_dir_all(&temp);
    written?;
    decode_all(spec, files, archive)
}

fn decode_all(spec: &Cifar10, files: Vec<Vec<u8>>, archive: &Path) -> Result<(InMemory, InMemory)> {
    let named: Vec<(PathBuf, Vec<u8>)> = spec
        .train
        .iter()
        .chain([&spec.test])
        .map(|m| member_path(archive, m))
        .zip(files)
        .collect();
    let parts = read::parallel_map(&named, read::cores(), |(p, b)| parse_raw(b, p))?;
    assemble(parts, spec.train.len())
}

/// How errors name a file inside an archive: `archive.tar.gz/cifar-10-batches-bin/x.bin`.
fn member_path(archive: &Path, m: &Member) -> PathBuf {
    archive.join(ARCHIVE_FOLDER).join(&m.name)
}

/// The bytes of every data file of `spec` in the archive, in `spec` order, verified.
fn read_members(spec: &Cifar10, path: &Path) -> Result<Vec<Vec<u8>>> {
    let bad = |message: String| Error::Archive {
        path: path.to_path_buf(),
        message,
    };
    let members: Vec<&Member> = spec.train.iter().chain([&spec.test]).collect();
    let position = |name: &str| {
        members.iter().position(|m| {
            name == m.name
                || name
                    .strip_prefix(ARCHIVE_FOLDER)
                    .and_then(|r| r.strip_prefix('/'))
                    == Some(&m.name)
        })
    };
    let mut found: Vec<Option<Vec<u8>>> = vec![None; members.len()];
    for (name, bytes) in read::tar_members(path, |name| position(name).is_some())? {
        let Some(i) = position(&name) else { continue };
        if let Some(c) = &members[i].checksum {
            c.verify(&bytes, &member_path(path, members[i]))?;
        }
        found[i] = Some(bytes);
    }
    found
        .into_iter()
        .zip(&members)
        .map(|(f, m)| f.ok_or_else(|| bad(format!("no member {ARCHIVE_FOLDER}/{}", m.name))))
        .collect()
}
