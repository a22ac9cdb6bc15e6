//! CIFAR-10, binary version: the six files of the official release
//! (`data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`), plain or gzipped,
//! the official `cifar-10-binary.tar.gz` archive, and [`load_data`], which downloads
//! that archive into the cache.
//!
//! Each file holds records of 3,073 bytes: a label byte (0..9), then the red, green
//! and blue planes, each 32 x 32 row-major. Images are transposed on load to height x
//! width x channels, the layout of kiln's models (input `[32, 32, 3]`), and kept as
//! bytes.

mod archive;
mod stream;

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

pub use archive::load_archive;
pub use stream::Stream;

use crate::cache::{Cache, Remote};
use crate::checksum::Checksum;
use crate::dataset::{InMemory, Inputs, Targets};
use crate::error::{Error, Result};
use crate::read;

/// Image height.
pub const HEIGHT: usize = 32;
/// Image width.
pub const WIDTH: usize = 32;
/// Colour channels.
pub const CHANNELS: usize = 3;
/// Bytes of one image.
pub const IMAGE_LEN: usize = HEIGHT * WIDTH * CHANNELS;
/// Bytes of one record: the label, then the image.
pub const RECORD_LEN: usize = 1 + IMAGE_LEN;
/// The number of classes.
pub const CLASSES: usize = 10;
/// The class names, in label order.
pub const CLASS_NAMES: [&str; CLASSES] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The official archive's address.
pub const ARCHIVE_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// The official archive's MD5.
pub const ARCHIVE_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// The folder inside the archive that holds the data files.
pub const ARCHIVE_FOLDER: &str = "cifar-10-batches-bin";

/// The official files and the MD5 of each (uncompressed), training files first.
pub const OFFICIAL_FILES: [(&str, &str); 6] = [
    ("data_batch_1.bin", "5dd7e06a14cb22eb9f671a540d1b7c25"),
    ("data_batch_2.bin", "5ea93a67294ea407fff1d09f752e9692"),
    ("data_batch_3.bin", "942cd6a4bcdd0dd3c604fbe906cb4421"),
    ("data_batch_4.bin", "ae636b3ba5c66a11e91e8cb52e771fcb"),
    ("data_batch_5.bin", "53f37980c15c3d472c316c40844f3f0d"),
    ("test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d"),
];

/// The cache sub-folder of CIFAR-10.
const CACHE_FOLDER: &str = "cifar-10";

/// One data file of the release, and its checksum when it is to be verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The file name (`data_batch_1.bin`).
    pub name: String,
    /// The checksum of the uncompressed file.
    pub checksum: Option<Checksum>,
}

/// Where CIFAR-10 comes from and what its files must hash to: the official release
/// by default, something else for a mirror with other files or for tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cifar10 {
    /// The archive to download.
    pub archive: Remote,
    /// The training files, in order.
    pub train: Vec<Member>,
    /// The test file.
    pub test: Member,
}

impl Default for Cifar10 {
    fn default() -> Self {
        Self::official()
    }
}

impl Cifar10 {
    /// The official release, every file checked against its published MD5.
    pub fn official() -> Self {
        let member = |(name, md5): (&str, &str)| Member {
            name: name.to_string(),
            checksum: Some(Checksum::Md5(md5.to_string())),
        };
        let [b1, b2, b3, b4, b5, test] = OFFICIAL_FILES;
        Self {
            archive: Remote {
                file: "cifar-10-binary.tar.gz".to_string(),
                url: ARCHIVE_URL.to_string(),
                checksum: Checksum::Md5(ARCHIVE_MD5.to_string()),
            },
            train: [b1, b2, b3, b4, b5].into_iter().map(member).collect(),
            test: member(test),
        }
    }

    /// The same release without checksum verification of the data files (for files
    /// converted or re-packed by hand).
    pub fn unverified(mut self) -> Self {
        for m in self.train.iter_mut().chain(std::iter::once(&mut self.test)) {
            m.checksum = None;
        }
        self
    }

    fn members(&self) -> impl Iterator<Item = &Member> {
        self.train.iter().chain(std::iter::once(&self.test))
    }

    /// The training and test sets from the files in `dir` (each `name` or
    /// `name.gz`), verified. Each file is streamed straight into the data set's
    /// memory (the test set on a second thread), so the peak is the data set itself,
    /// not the data set plus the decompressed files.
    pub fn load_dir(&self, dir: &Path) -> Result<(InMemory, InMemory)> {
        let train: Vec<(&Member, PathBuf)> = self
            .train
            .iter()
            .map(|m| Ok((m, find(dir, &m.name)?)))
            .collect::<Result<_>>()?;
        let test_path = find(dir, &self.test.name)?;
        let test = &self.test;
        let (train, test) = std::thread::scope(|s| {
            let test = s.spawn(move || {
                let mut part = Part::default();
                part.stream(&test_path, test.checksum.as_ref())?;
                Ok::<_, Error>(part)
            });
            let mut part = Part::default();
            for (m, path) in &train {
                part.stream(path, m.checksum.as_ref())?;
            }
            let test = test
                .join()
                .unwrap_or_else(|_| Err(Error::Config("the test-set reader failed".into())))?;
            Ok::<_, Error>((part, test))
        })?;
        Ok((
            into_dataset(train.images, train.labels)?,
            into_dataset(test.images, test.labels)?,
        ))
    }

    /// The training and test sets from the cache; on first use the archive is
    /// downloaded, verified and extracted there.
    pub fn load_cached(&self, cache: &Cache) -> Result<(InMemory, InMemory)> {
        let folder = cache.dir().join(CACHE_FOLDER).join(ARCHIVE_FOLDER);
        if self.members().all(|m| find(&folder, &m.name).is_ok()) {
            return self.load_dir(&folder);
        }
        let archive = cache.fetch(&self.archive, CACHE_FOLDER)?;
        archive::extract(self, &archive, &folder)
    }
}

/// `dir/name`, else `dir/name.gz`.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let plain = dir.join(name);
    if plain.is_file() {
        return Ok(plain);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(Error::Missing {
        path: plain,
        hint: format!(
            "place the CIFAR-10 binary files there (from {ARCHIVE_URL}, folder {ARCHIVE_FOLDER}/), plain or gzipped"
        ),
    })
}

/// CIFAR-10 (training set, test set), downloaded into the cache folder
/// (`KILN_DATA_DIR`, else the user's cache folder) on first use, verified, and
/// read from there afterwards. The images are `u8`; scale them by 1/255 with a
/// [`Pipeline`](crate::Pipeline) in the batcher.
pub fn load_data() -> Result<(InMemory, InMemory)> {
    Cifar10::official().load_cached(&Cache::from_env()?)
}

/// The training and test sets from the official files in `dir` (plain or gzipped),
/// each checked against its published MD5.
pub fn load_dir(dir: &Path) -> Result<(InMemory, InMemory)> {
    Cifar10::official().load_dir(dir)
}

/// The records of one file (plain or gzipped), without checksum verification.
pub fn load_file(path: &Path) -> Result<InMemory> {
    let bytes = read::read_file(path)?;
    parse(&bytes, path)
}

/// The records of one uncompressed CIFAR-10 file held in `bytes`; `path` names the
/// source in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<InMemory> {
    let (images, labels) = parse_raw(bytes, path)?;
    into_dataset(images, labels)
}

/// Images (HWC) and labels of the records in `bytes`.
fn parse_raw(bytes: &[u8], path: &Path) -> Result<(Vec<u8>, Vec<u32>)> {
    if bytes.is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
        });
    }
    let records = bytes.len() / RECORD_LEN;
    let rest = bytes.len() % RECORD_LEN;
    if rest != 0 {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            what: format!(
                "record {records} (starting at byte {})",
                records * RECORD_LEN
            ),
            expected: RECORD_LEN as u64,
            found: rest as u64,
        });
    }
    let mut images = vec![0u8; records * IMAGE_LEN];
    let mut labels = Vec::with_capacity(records);
    for (i, (record, image)) in bytes
        .chunks_exact(RECORD_LEN)
        .zip(images.chunks_exact_mut(IMAGE_LEN))
        .enumerate()
    {
        labels.push(decode_record(record, image, path, i)?);
    }
    Ok((images, labels))
}

/// Images (HWC) and labels gathered from one or more files.
#[derive(Default)]
struct Part {
    images: Vec<u8>,
    labels: Vec<u32>,
}

impl Part {
    /// Appends the records of `path` (plain or gzipped), reading it in blocks and
    /// hashing the uncompressed bytes as they pass when `checksum` is given.
    fn stream(&mut self, path: &Path, checksum: Option<&Checksum>) -> Result<()> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
        let gzip = read::is_gzip(reader.fill_buf().map_err(|e| Error::io(path, e))?);
        let records_hint = if gzip {
            read::gzip_size_hint(path, size).unwrap_or(0) / RECORD_LEN
        } else {
            usize::try_from(size).unwrap_or(0) / RECORD_LEN
        };
        self.images.reserve(records_hint * IMAGE_LEN);
        self.labels.reserve(records_hint);
        let mut source: Box<dyn Read> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        let read_error = |e: std::io::Error| {
            if gzip {
                Error::Gzip {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                }
            } else {
                Error::io(path, e)
            }
        };
        let mut hasher = checksum.map(Checksum::hasher);
        let mut block = vec![0u8; RECORD_LEN * 256];
        let (mut filled, mut index) = (0usize, 0usize);
        loop {
            let n = match source.read(&mut block[filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            };
            if n == 0 {
                break;
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&block[filled..filled + n]);
            }
            filled += n;
            let whole = filled / RECORD_LEN * RECORD_LEN;
            for record in block[..whole].chunks_exact(RECORD_LEN) {
                let start = self.images.len();
                self.images.resize(start + IMAGE_LEN, 0);
                let label = decode_record(record, &mut self.images[start..], path, index)?;
                self.labels.push(label);
                index += 1;
            }
            block.copy_within(whole..filled, 0);
            filled -= whole;
        }
        if index == 0 && filled == 0 {
            return Err(Error::Empty {
                path: path.to_path_buf(),
            });
        }
        if filled != 0 {
            return Err(Error::Truncated {
                path: path.to_path_buf(),
                what: format!("record {index} (starting at byte {})", index * RECORD_LEN),
                expected: RECORD_LEN as u64,
                found: filled as u64,
            });
        }
        if let (Some(h), Some(c)) = (hasher, checksum) {
            c.check(&h.finish_hex(), path)?;
        }
        Ok(())
    }
}

/// Checks the label of one record and writes its image as HWC into `image`.
fn decode_record(record: &[u8], image: &mut [u8], path: &Path, index: usize) -> Result<u32> {
    let label = record[0];
    if usize::from(label) >= CLASSES {
        return Err(Error::LabelOutOfRange {
            path: path.to_path_buf(),
            record: index,
            label: i64::from(label),
            classes: CLASSES,
        });
    }
    chw_to_hwc(&record[1..], image);
    Ok(u32::from(label))
}

/// Interleaves the three colour planes: pixel `p`'s channels land side by side.
fn chw_to_hwc(planes: &[u8], image: &mut [u8]) {
    const PLANE: usize = HEIGHT * WIDTH;
    let (r, rest) = planes.split_at(PLANE);
    let (g, b) = rest.split_at(PLANE);
    for (((px, &r), &g), &b) in image.chunks_exact_mut(CHANNELS).zip(r).zip(g).zip(b) {
        px[0] = r;
        px[1] = g;
        px[2] = b;
    }
}

fn into_dataset(images: Vec<u8>, labels: Vec<u32>) -> Result<InMemory> {
    Ok(InMemory::new(
        vec![HEIGHT, WIDTH, CHANNELS],
        Inputs::U8(images),
        Targets::Classes {
            labels,
            classes: CLASSES,
        },
    )?
    .with_class_names(CLASS_NAMES.iter().map(|s| s.to_string()).collect()))
}

/// The training set from the first `train` parts and the test set from the rest.
fn assemble(parts: Vec<(Vec<u8>, Vec<u32>)>, train: usize) -> Result<(InMemory, InMemory)> {
    let mut parts = parts.into_iter();
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (i, (im, lb)) in parts.by_ref().take(train).enumerate() {
        if i == 0 {
            images = im;
            labels = lb;
            images.reserve(images.len() * (train - 1));
        } else {
            images.extend_from_slice(&im);
            labels.extend_from_slice(&lb);
        }
    }
    let (mut test_images, mut test_labels) = (Vec::new(), Vec::new());
    for (im, lb) in parts {
        test_images.extend_from_slice(&im);
        test_labels.extend_from_slice(&lb);
    }
    Ok((
        into_dataset(images, labels)?,
        into_dataset(test_images, test_labels)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record whose plane `c` holds `c * 100 + pixel % 100`.
    pub(crate) fn record(label: u8) -> Vec<u8> {
        let mut r = vec![label];
        for c in 0..3 {
            r.extend((0..1024).map(|p| (c * 100 + p % 100) as u8));
        }
        r
    }

    #[test]
    fn records_are_transposed_to_hwc() {
        let mut bytes = record(3);
        bytes.extend(record(9));
        let d = parse(&bytes, Path::new("t.bin")).unwrap();
        assert_eq!(d.labels().unwrap(), &[3, 9]);
        let px = d.bytes().unwrap();
        // Pixel 5 of image 0: (5, 105, 205).
        assert_eq!(&px[15..18], &[5, 105, 205]);
        assert_eq!(
            &px[IMAGE_LEN + 3 * 1023..IMAGE_LEN + 3 * 1024],
            &[23, 123, 223]
        );
        assert_eq!(d.class_names()[9], "truck");
    }

    #[test]
    fn bad_files_name_the_place() {
        let p = Path::new("bad.bin");
        assert!(matches!(parse(&[], p), Err(Error::Empty { .. })));
        let mut bytes = record(1);
        bytes.extend(&record(2)[..100]);
        let err = parse(&bytes, p).unwrap_err();
        assert!(
            err.to_string().contains("record 1 (starting at byte 3073)"),
            "{err}"
        );
        let mut bytes = record(1);
        bytes.extend(record(10));
        let err = parse(&bytes, p).unwrap_err();
        assert!(
            matches!(
                err,
                Error::LabelOutOfRange {
                    record: 1,
                    label: 10,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_files_say_where_they_go() {
        let err = load_dir(Path::new("/nonexistent/cifar")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("data_batch_1.bin") && msg.contains(ARCHIVE_URL),
            "{msg}"
        );
    }
}
