//! A streaming CIFAR-10 data set: records are read from uncompressed files on demand,
//! so memory holds none of the images.

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::{CHANNELS, CLASSES, HEIGHT, IMAGE_LEN, RECORD_LEN, WIDTH, decode_record};
use crate::dataset::{Dataset, Dtype, Input, Sample, Target, TargetKind};
use crate::error::{Error, Result};

/// CIFAR-10 records read from uncompressed `.bin` files as the batcher asks for them.
#[derive(Debug)]
pub struct Stream {
    files: Vec<(PathBuf, Reader)>,
    /// `starts[i]`: the first sample of file `i`; the last entry is the total.
    starts: Vec<usize>,
    shape: [usize; 3],
}

impl Stream {
    /// Opens uncompressed CIFAR-10 files (gzipped ones cannot be read at random:
    /// decompress them, or load them with [`load_file`](super::load_file)).
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::new();
        let mut starts = vec![0];
        let mut total = 0usize;
        for path in paths {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
            let mut head = [0u8; 2];
            let reader = Reader::new(file);
            if len >= 2 {
                reader
                    .read_at(&mut head, 0)
                    .map_err(|e| Error::io(path, e))?;
            }
            if crate::read::is_gzip(&head) {
                return Err(Error::Config(format!(
                    "{}: a gzipped file cannot be streamed; decompress it or use cifar::load_file",
                    path.display()
                )));
            }
            check_len(path, len)?;
            total += (len / RECORD_LEN as u64) as usize;
            starts.push(total);
            files.push((path.clone(), reader));
        }
        Ok(Self {
            files,
            starts,
            shape: [HEIGHT, WIDTH, CHANNELS],
        })
    }
}

fn check_len(path: &Path, len: u64) -> Result<()> {
    if len == 0 {
        return Err(Error::Empty {
            path: path.to_path_buf(),
        });
    }
    let rec = RECORD_LEN as u64;
    if !len.is_multiple_of(rec) {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            what: format!(
                "record {} (starting at byte {})",
                len / rec,
                len / rec * rec
            ),
            expected: rec,
            found: len % rec,
        });
    }
    Ok(())
}

impl Dataset for Stream {
    fn len(&self) -> usize {
        self.starts.last().copied().unwrap_or(0)
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn dtype(&self) -> Dtype {
        Dtype::U8
    }

    fn target_kind(&self) -> TargetKind {
        TargetKind::Classes(CLASSES)
    }

    fn get(&self, index: usize) -> Result<Sample<'_>> {
        let len = self.len();
        if index >= len {
            return Err(Error::Index { index, len });
        }
        // The file whose range holds `index`: the last start not above it.
        let f = self.starts.partition_point(|&s| s <= index) - 1;
        let (path, reader) = &self.files[f];
        let local = index - self.starts[f];
        let mut record = [0u8; RECORD_LEN];
        reader
            .read_at(&mut record, (local * RECORD_LEN) as u64)
            .map_err(|e| Error::io(path, e))?;
        let mut image = vec![0u8; IMAGE_LEN];
        let label = decode_record(&record, &mut image, path, local)?;
        Ok(Sample {
            input: Input::U8(Cow::Owned(image)),
            target: Target::Class(label),
        })
    }
}

/// Positioned reads: `pread` where the platform has it, else a locked seek and read.
#[derive(Debug)]
struct Reader {
    #[cfg(unix)]
    file: File,
    #[cfg(not(unix))]
    file: std::sync::Mutex<File>,
}

impl Reader {
    fn new(file: File) -> Self {
        #[cfg(unix)]
        return Self { file };
        #[cfg(not(unix))]
        return Self {
            file: std::sync::Mutex::new(file),
        };
    }

    #[cfg(unix)]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }

    #[cfg(not(unix))]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("a reader thread panicked"))?;
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(buf)
    }
}
