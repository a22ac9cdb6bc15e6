//! Atomic file replacement: write a temporary file beside the target, flush it to
//! the disk, then rename it over the target. A crash or a full disk at any point
//! leaves either the old file or the new one, never a mix.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// Makes temporary names unique among the writes of this process.
static SERIAL: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with what `write` writes, atomically.
///
/// The bytes go to `<path>.tmp-<pid>-<n>` in the same directory (a rename is atomic
/// only within one file system), which is synced to the disk before it is renamed
/// over `path`; the directory is then synced so that the rename itself survives a
/// power cut (best effort: not every platform can sync a directory).
///
/// On any error, including one that `write` returns, the temporary file is removed,
/// `path` is left as it was, and the error names `path`. A process killed mid-write
/// cannot remove its temporary file: each write first removes those that earlier
/// writes to the same `path` left, by processes no longer running.
pub(crate) fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = temporary_path(path).map_err(io_error)?;
    remove_stale(path);
    let written = write_synced(&tmp, write).and_then(|()| fs::rename(&tmp, path));
    if let Err(source) = written {
        // The temporary file may not exist (creation failed); nothing else to do.
        let _ = fs::remove_file(&tmp);
        return Err(io_error(source));
    }
    sync_directory(path);
    Ok(())
}

/// `<dir>/<name>.tmp-<pid>-<n>` for `<dir>/<name>`.
fn temporary_path(path: &Path) -> io::Result<PathBuf> {
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path names no file",
        ));
    };
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    ));
    Ok(path.with_file_name(tmp_name))
}

/// Removes the temporary files `<name>.tmp-<pid>-<n>` beside `path` whose process no
/// longer runs. Best effort: a file that cannot be listed or removed stays, and where
/// the system cannot say whether a process runs, every file stays.
fn remove_stale(path: &Path) {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = format!("{name}.tmp-");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some((pid, serial)) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        let serial_ok = !serial.is_empty() && serial.bytes().all(|b| b.is_ascii_digit());
        match pid.parse::<u32>() {
            Ok(pid) if serial_ok && pid != std::process::id() && !process_runs(pid) => {
                let _ = fs::remove_file(entry.path());
            }
            _ => {}
        }
    }
}

/// Whether process `pid` runs; `true` where the system cannot tell (no `/proc`).
fn process_runs(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// Creates `tmp` (it must not exist), fills it and syncs it to the disk.
fn write_synced(
    tmp: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let file = File::create_new(tmp)?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    write(&mut writer)?;
    let file = writer
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    file.sync_all()
}

/// Syncs the directory holding `path`, so that a rename into it is durable.
fn sync_directory(path: &Path) {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        // Best effort: the new file is complete and in place either way.
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A writer that fails with "no space left" once `room` bytes are written, as
    /// a full disk does.
    struct FullDisk<'a> {
        inner: &'a mut dyn Write,
        room: usize,
    }

    impl Write for FullDisk<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "no space left on device",
                ));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.inner.write(&buf[..n])
        }

        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kiln-train-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_replaces_the_file() {
        let dir = scratch_dir("replace");
        let path = dir.join("a.bin");
        write_atomic(&path, |w| w.write_all(b"first")).unwrap();
        write_atomic(&path, |w| w.write_all(b"second")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(entries(&dir), ["a.bin"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_disk_mid_write_keeps_the_old_file_and_leaves_no_temporary() {
        let dir = scratch_dir("full");
        let path = dir.join("model.safetensors");
        let old: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        write_atomic(&path, |w| w.write_all(&old)).unwrap();
        let new = vec![7u8; 3 << 20];
        for room in [0, 100, 2 << 20] {
            let err =
                write_atomic(&path, |w| FullDisk { inner: w, room }.write_all(&new)).unwrap_err();
            match &err {
                Error::Io { path: p, source } => {
                    assert_eq!(p, &path);
                    assert_eq!(source.kind(), io::ErrorKind::StorageFull);
                }
                other => panic!("expected an I/O error, got {other:?}"),
            }
            assert!(err.to_string().contains("model.safetensors"), "{err}");
            assert_eq!(fs::read(&path).unwrap(), old, "room {room}");
            assert_eq!(entries(&dir), ["model.safetensors"], "room {room}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_write_removes_the_temporary_files_of_dead_writers_to_the_same_path() {
        let dir = scratch_dir("stale");
        let path = dir.join("model.safetensors");
        // The pid of a process that has exited.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        let dead = child.id();
        let live = std::process::id();
        let stale = [
            format!("model.safetensors.tmp-{dead}-0"),
            format!("model.safetensors.tmp-{dead}-17"),
        ];
        let kept = [
            // A write in progress: this process, and process 1.
            format!("model.safetensors.tmp-{live}-99"),
            "model.safetensors.tmp-1-0".to_string(),
            // Another file's, and names that only look alike.
            format!("other.safetensors.tmp-{dead}-0"),
            format!("model.safetensors.tmp-{dead}-x"),
            format!("model.safetensors.tmp-{dead}"),
            "model.safetensors.bak".to_string(),
        ];
        for name in stale.iter().chain(&kept) {
            fs::write(dir.join(name), b"partial").unwrap();
        }
        write_atomic(&path, |w| w.write_all(b"new")).unwrap();
        let mut expected: Vec<String> = kept.to_vec();
        expected.push("model.safetensors".to_string());
        expected.sort();
        assert_eq!(entries(&dir), expected);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_path() {
        let dir = scratch_dir("missing");
        let path = dir.join("no-such-dir").join("a.bin");
        let err = write_atomic(&path, |w| w.write_all(b"x")).unwrap_err();
        assert!(
            matches!(&err, Error::Io { path: p, source } if p == &path
                && source.kind() == io::ErrorKind::NotFound),
            "{err:?}"
        );
        assert_eq!(entries(&dir), Vec::<String>::new());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        let err = write_atomic(Path::new("/"), |w| w.write_all(b"x")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
    }
}
