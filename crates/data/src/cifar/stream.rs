//! A streaming CIFAR-10 data set: records are read from uncompressed files on demand,
//! so memory holds none of the images.

use std::borrow::Cow;
use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{CHANNELS, CLASSES, HEIGHT, IMAGE_LEN, RECORD_LEN, WIDTH, decode_record};
use crate::dataset::{Dataset, Dtype, Input, Origin, Sample, Target, TargetKind};
use crate::error::{Error, Result};

/// CIFAR-10 records read from uncompressed `.bin` files as the batcher asks for them.
///
/// A file that changes after [`open`](Stream::open) (rewritten in place, truncated or
/// grown, as a copy still in progress does) makes every later read an
/// [`Error::Changed`] naming it, rather than a mix of old and new records. A file
/// deleted or replaced by a rename is not a change: the open file keeps its records.
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
            let meta = file.metadata().map_err(|e| Error::io(path, e))?;
            let len = meta.len();
            let mut head = [0u8; 2];
            let reader = Reader::new(file, Stamp::of(&meta));
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
        let read = reader.read_at(&mut record, (local * RECORD_LEN) as u64);
        // Checked after the read: a change during it shows in the stamp.
        reader.unchanged(path)?;
        read.map_err(|e| Error::io(path, e))?;
        let mut image = vec![0u8; IMAGE_LEN];
        let label = decode_record(&record, &mut image, path, local)?;
        Ok(Sample {
            input: Input::U8(Cow::Owned(image)),
            target: Target::Class(label),
        })
    }

    fn origin(&self, index: usize) -> Option<Origin> {
        let f = self
            .starts
            .partition_point(|&s| s <= index)
            .checked_sub(1)?;
        let (path, _) = self.files.get(f)?;
        Some(Origin {
            file: path.display().to_string(),
            place: Some(format!("record {}", index - self.starts[f])),
        })
    }
}

/// What a file looked like when it was opened: its length and modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(meta: &Metadata) -> Self {
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }
}

/// Positioned reads: `pread` where the platform has it, else a locked seek and read;
/// and the file's [`Stamp`] at opening, to notice a change.
#[derive(Debug)]
struct Reader {
    #[cfg(unix)]
    file: File,
    #[cfg(not(unix))]
    file: std::sync::Mutex<File>,
    opened: Stamp,
}

impl Reader {
    fn new(file: File, opened: Stamp) -> Self {
        #[cfg(unix)]
        return Self { file, opened };
        #[cfg(not(unix))]
        return Self {
            file: std::sync::Mutex::new(file),
            opened,
        };
    }

    /// An [`Error::Changed`] when the open file's length or modification time is no
    /// longer what it was at opening (one `fstat`, beside a 3,073-byte read).
    fn unchanged(&self, path: &Path) -> Result<()> {
        #[cfg(unix)]
        let meta = self.file.metadata();
        #[cfg(not(unix))]
        let meta = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("a reader thread panicked"))
            .and_then(|f| f.metadata());
        let now = Stamp::of(&meta.map_err(|e| Error::io(path, e))?);
        let what = if now.len != self.opened.len {
            format!("{} bytes now, {} when opened", now.len, self.opened.len)
        } else if now.modified != self.opened.modified {
            "modified since it was opened".to_string()
        } else {
            return Ok(());
        };
        Err(Error::Changed {
            path: path.to_path_buf(),
            what,
        })
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
