//! The 8x8 handwritten digits (UCI, via scikit-learn) shipped in `examples/data/`.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The SHA-256 of `examples/data/digits.csv.gz`.
pub const SHA256: &str = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22";

/// Pixels per image.
pub const PIXELS: usize = 64;

/// Why the digits could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not the one that shipped.
    #[error(
        "{path} has sha256 {actual}, expected {expected}: the file is corrupt or was replaced; restore it with `git checkout -- examples/data`"
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Its checksum.
        actual: String,
        /// The shipped checksum.
        expected: &'static str,
    },
    /// A row that is not 64 pixels and a label.
    #[error("{path}:{line}: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        detail: String,
    },
}

/// Images scaled to `[0, 1]` (`[n, 8, 8, 1]`, row-major) and their labels.
#[derive(Clone, Debug)]
pub struct Digits {
    /// `n * 64` pixel values.
    pub images: Vec<f32>,
    /// `n` labels in `0..10`.
    pub labels: Vec<u8>,
}

/// The path of the shipped file.
pub fn shipped_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.csv.gz")
}

impl Digits {
    /// Loads and verifies the shipped digits.
    pub fn load() -> Result<Self, DataError> {
        Self::load_from(&shipped_path())
    }

    /// Loads the gzip-compressed CSV at `path`, checking its SHA-256 first.
    pub fn load_from(path: &Path) -> Result<Self, DataError> {
        let io = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bytes = std::fs::read(path).map_err(io)?;
        let actual: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if actual != SHA256 {
            return Err(DataError::Checksum {
                path: path.to_path_buf(),
                actual,
                expected: SHA256,
            });
        }
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .map_err(io)?;
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for (i, row) in text.lines().enumerate() {
            let parse = |detail: String| DataError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                detail,
            };
            let cells: Vec<&str> = row.split(',').collect();
            if cells.len() != PIXELS + 1 {
                return Err(parse(format!(
                    "{} cells, expected {}",
                    cells.len(),
                    PIXELS + 1
                )));
            }
            for cell in &cells[..PIXELS] {
                let v: f32 = cell
                    .trim()
                    .parse()
                    .map_err(|_| parse(format!("bad pixel `{cell}`")))?;
                images.push(v / 16.0);
            }
            let label: u8 = cells[PIXELS]
                .trim()
                .parse()
                .map_err(|_| parse(format!("bad label `{}`", cells[PIXELS])))?;
            if label > 9 {
                return Err(parse(format!("label {label} outside 0..10")));
            }
            labels.push(label);
        }
        Ok(Self { images, labels })
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Splits into the first `n` images and the rest.
    pub fn split_at(&self, n: usize) -> (Digits, Digits) {
        let n = n.min(self.len());
        (
            Digits {
                images: self.images[..n * PIXELS].to_vec(),
                labels: self.labels[..n].to_vec(),
            },
            Digits {
                images: self.images[n * PIXELS..].to_vec(),
                labels: self.labels[n..].to_vec(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_the_shipped_file() {
        let d = Digits::load().unwrap();
        assert_eq!(d.len(), 1797);
        assert_eq!(d.images.len(), 1797 * 64);
        assert!(d.images.iter().all(|v| (0.0..=1.0).contains(v)));
        let mut counts = [0; 10];
        for &l in &d.labels {
            counts[l as usize] += 1;
        }
        // scikit-learn's class counts.
        assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    }

    #[test]
    fn a_corrupt_file_is_a_checksum_error() {
        let dir = std::env::temp_dir().join(format!("kiln-digits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("digits.csv.gz");
        let mut bytes = std::fs::read(shipped_path()).unwrap();
        bytes[100] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = Digits::load_from(&path).unwrap_err();
        assert!(matches!(err, DataError::Checksum { .. }), "{err}");
        let missing = Digits::load_from(&dir.join("absent.csv.gz")).unwrap_err();
        assert!(missing.to_string().contains("absent.csv.gz"), "{missing}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
