//! Reading whole files, plain or gzip-compressed (told apart by the gzip magic bytes,
//! not by the file name), and reading several at once on scoped threads.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The largest output that a gzip trailer's size hint may preallocate; the trailer
/// holds the size modulo 2^32 and a corrupt file may claim anything.
const MAX_HINT: usize = 1 << 30;
/// Deflate expands at most about 1032-fold, which bounds an honest size hint.
const MAX_RATIO: usize = 1032;

/// Whether `bytes` start like a gzip stream.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// The bytes of `path`, decompressed when they are gzip.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    match decode(&raw, path)? {
        Cow::Borrowed(_) => Ok(raw),
        Cow::Owned(plain) => Ok(plain),
    }
}

/// `bytes` decompressed when they are gzip (every member of a multi-member stream),
/// else `bytes` themselves. `path` names the source in errors.
pub fn decode<'a>(bytes: &'a [u8], path: &Path) -> Result<Cow<'a, [u8]>> {
    if !is_gzip(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let hint = match bytes.len().checked_sub(4).and_then(|at| bytes.get(at..)) {
        Some(&[a, b, c, d]) => (u32::from_le_bytes([a, b, c, d]) as usize)
            .min(MAX_HINT)
            .min(bytes.len().saturating_mul(MAX_RATIO)),
        _ => 0,
    };
    let mut out = Vec::with_capacity(hint.saturating_add(1));
    MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| Error::Gzip {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(Cow::Owned(out))
}

/// The uncompressed size a gzip file at `path` (of `size` bytes) announces in its
/// trailer, bounded like [`decode`]'s preallocation; `None` when it cannot be read.
pub(crate) fn gzip_size_hint(path: &Path, size: u64) -> Option<usize> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(size.checked_sub(4)?)).ok()?;
    let mut tail = [0u8; 4];
    file.read_exact(&mut tail).ok()?;
    let compressed = usize::try_from(size).ok()?;
    Some(
        (u32::from_le_bytes(tail) as usize)
            .min(MAX_HINT)
            .min(compressed.saturating_mul(MAX_RATIO)),
    )
}

/// Reads (and decompresses) every file of `paths`, on up to `threads` threads.
pub(crate) fn read_files(paths: &[PathBuf], threads: usize) -> Result<Vec<Vec<u8>>> {
    parallel_map(paths, threads, |p| read_file(p))
}

/// `f` applied to every item, on up to `threads` scoped threads, results in order.
pub(crate) fn parallel_map<T: Sync, U: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<U> + Sync,
) -> Result<Vec<U>> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut slots: Vec<Option<Result<U>>> = (0..items.len()).map(|_| None).collect();
    let done = std::sync::Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    if let Ok(mut done) = done.lock() {
                        done.push((i, r));
                    }
                }
            });
        }
    });
    for (i, r) in done.into_inner().unwrap_or_default() {
        slots[i] = Some(r);
    }
    slots
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Config("a reader thread failed".into()))))
        .collect()
}

/// The members of the tar archive at `path` (gzipped or plain, told apart by their
/// first bytes) whose names `wanted` accepts, with their bytes, in archive order.
/// Names lose a leading `./`; errors name the archive and the member.
pub(crate) fn tar_members(
    path: &Path,
    mut wanted: impl FnMut(&str) -> bool,
) -> Result<Vec<(String, Vec<u8>)>> {
    use std::io::BufRead;

    let bad = |message: String| Error::Archive {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let head = reader.fill_buf().map_err(|e| Error::io(path, e))?;
    if head.is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
        });
    }
    let source: Box<dyn Read> = if is_gzip(head) {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut tar = tar::Archive::new(source);
    let entries = tar
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    let mut out = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("corrupt or cut short: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| bad(format!("bad member name: {e}")))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if !wanted(&name) {
            continue;
        }
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0).min(1 << 28));
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("member {name} is corrupt or cut short: {e}")))?;
        out.push((name, bytes));
    }
    Ok(out)
}

/// The available parallelism, at least 1.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn plain_bytes_pass_through_and_gzip_is_decoded() {
        let p = Path::new("x");
        assert!(matches!(decode(b"abc", p).unwrap(), Cow::Borrowed(b"abc")));
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(decode(&gz(&data), p).unwrap().as_ref(), &data[..]);
        let mut two = gz(b"ab");
        two.extend(gz(b"cd"));
        assert_eq!(decode(&two, p).unwrap().as_ref(), b"abcd");
    }

    #[test]
    fn truncated_gzip_is_an_error_naming_the_file() {
        let data = vec![7u8; 5000];
        let z = gz(&data);
        let err = decode(&z[..z.len() / 2], Path::new("cut.gz")).unwrap_err();
        assert!(matches!(err, Error::Gzip { .. }), "{err}");
        assert!(err.to_string().contains("cut.gz"));
        assert!(decode(&GZIP_MAGIC, Path::new("m.gz")).is_err());
    }

    #[test]
    fn parallel_map_keeps_order_and_errors() {
        let items: Vec<usize> = (0..17).collect();
        let out = parallel_map(&items, 3, |&i| Ok(i * 2)).unwrap();
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let err = parallel_map(&items, 2, |&i| {
            if i == 5 {
                Err(Error::Config("five".into()))
            } else {
                Ok(i)
            }
        });
        assert!(err.is_err());
    }
}
