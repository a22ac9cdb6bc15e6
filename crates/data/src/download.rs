//! Downloading one file over HTTP(S) into the cache: to a temporary file beside the
//! destination, hashed while it arrives, checked against its length and checksum,
//! and only then renamed into place.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::checksum::Checksum;
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Removes a temporary file unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A temporary name beside `dest`, unique to this process and call.
fn temp_path(dest: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = dest
        .file_name()
        .map_or_else(|| "download".into(), |n| n.to_string_lossy().into_owned());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dest.with_file_name(format!(".{name}.part-{}-{n}", std::process::id()))
}

/// Downloads `url` to `dest`, which exists afterwards only if every byte arrived and
/// the checksum matched.
pub fn download(
    url: &str,
    dest: &Path,
    checksum: &Checksum,
    progress: bool,
    hint: &str,
) -> Result<()> {
    let fail = |message: String| Error::Download {
        url: url.to_string(),
        message,
        hint: hint.to_string(),
    };
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build(),
    );
    let response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let expected_len = response.body().content_length();
    let mut body = response.into_body().into_reader();

    let mut temp = TempFile {
        path: temp_path(dest),
        keep: false,
    };
    let file = std::fs::File::create(&temp.path).map_err(|e| Error::io(&temp.path, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut hasher = checksum.hasher();
    let mut bar = Progress::new(
        &dest
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        expected_len,
        progress,
    );
    let mut buf = vec![0u8; 1 << 18];
    let mut received = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.finish();
                return Err(fail(format!(
                    "the connection failed after {received} bytes: {e}; nothing was cached"
                )));
            }
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| Error::io(&temp.path, e))?;
        received += n as u64;
        bar.advance(n as u64);
    }
    bar.finish();
    if let Some(len) = expected_len
        && received != len
    {
        return Err(fail(format!(
            "the server announced {len} bytes but sent {received}; nothing was cached"
        )));
    }
    let found = hasher.finish_hex();
    if !found.eq_ignore_ascii_case(checksum.hex()) {
        return Err(fail(format!(
            "{} checksum mismatch: expected {}, found {found} ({received} bytes received); nothing was cached",
            checksum.algorithm(),
            checksum.hex()
        )));
    }
    let file = out
        .into_inner()
        .map_err(|e| Error::io(&temp.path, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(&temp.path, e))?;
    drop(file);
    std::fs::rename(&temp.path, dest).map_err(|e| Error::io(dest, e))?;
    temp.keep = true;
    Ok(())
}
