//! Checksums of downloaded and loaded files: MD5 (the figures CIFAR-10 and MNIST
//! publish) and SHA-256.

use std::fmt::Write as _;
use std::path::Path;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A published checksum, as lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// An MD5 digest (32 hex digits).
    Md5(String),
    /// A SHA-256 digest (64 hex digits).
    Sha256(String),
}

impl Checksum {
    /// The algorithm's name.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Md5(_) => "md5",
            Checksum::Sha256(_) => "sha256",
        }
    }

    /// The expected digest (hex).
    pub fn hex(&self) -> &str {
        match self {
            Checksum::Md5(h) | Checksum::Sha256(h) => h,
        }
    }

    /// A fresh hasher for this algorithm.
    pub(crate) fn hasher(&self) -> Hasher {
        match self {
            Checksum::Md5(_) => Hasher::Md5(Md5::new()),
            Checksum::Sha256(_) => Hasher::Sha256(Sha256::new()),
        }
    }

    /// Checks `bytes` (the content of `path`).
    pub fn verify(&self, bytes: &[u8], path: &Path) -> Result<()> {
        let mut h = self.hasher();
        h.update(bytes);
        self.check(&h.finish_hex(), path)
    }

    /// Compares a computed digest with this one.
    pub fn check(&self, found: &str, path: &Path) -> Result<()> {
        if found.eq_ignore_ascii_case(self.hex()) {
            Ok(())
        } else {
            Err(Error::Checksum {
                path: path.to_path_buf(),
                algorithm: self.algorithm(),
                expected: self.hex().to_string(),
                found: found.to_string(),
            })
        }
    }
}

/// A running digest, fed as bytes arrive.
#[derive(Clone, Debug)]
pub(crate) enum Hasher {
    /// MD5.
    Md5(Md5),
    /// SHA-256.
    Sha256(Sha256),
}

impl Hasher {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
        }
    }

    /// The digest as lowercase hex.
    pub fn finish_hex(self) -> String {
        match self {
            Hasher::Md5(h) => hex(&h.finalize()),
            Hasher::Sha256(h) => hex(&h.finalize()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The MD5 of `bytes`, as hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

/// The SHA-256 of `bytes`, as hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn verify_reports_both_digests() {
        let c = Checksum::Md5("900150983cd24fb0d6963f7d28e17f72".into());
        assert!(c.verify(b"abc", Path::new("f")).is_ok());
        let err = c.verify(b"abd", Path::new("f.bin")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("f.bin") && msg.contains("900150983cd24fb0d6963f7d28e17f72"));
    }
}
