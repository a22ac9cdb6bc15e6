//! The cache folder for downloaded data sets, and fetching a published file into it.
//!
//! The folder is `KILN_DATA_DIR` when set, else `kiln` in the user's cache folder
//! (`~/.cache/kiln` on Linux). A file enters the cache only after its checksum
//! matched: it is downloaded to a temporary name beside its final place, verified,
//! then renamed, so an interrupted or corrupt download never leaves a file that a
//! later run would take for good.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::checksum::Checksum;
use crate::error::{Error, Result};

/// The environment variable that names the cache folder.
pub const DATA_DIR_VAR: &str = "KILN_DATA_DIR";
/// The environment variable that names a mirror: a base URL under which every file
/// is fetched by its name, instead of from its official address.
pub const MIRROR_VAR: &str = "KILN_DATA_MIRROR";

/// A published file: its name, its official address and its checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// The file name, in the cache and on mirrors.
    pub file: String,
    /// The official address.
    pub url: String,
    /// The published checksum of the file as served.
    pub checksum: Checksum,
}

impl Remote {
    /// A file served at `base_url/file`.
    pub fn new(base_url: &str, file: &str, checksum: Checksum) -> Self {
        Self {
            file: file.to_string(),
            url: join_url(base_url, file),
            checksum,
        }
    }
}

fn join_url(base: &str, file: &str) -> String {
    format!("{}/{file}", base.trim_end_matches('/'))
}

/// Where downloaded data sets are kept, and how missing files are fetched.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
    mirror: Option<String>,
    progress: bool,
}

impl Cache {
    /// The cache in `dir`, fetching from official addresses, with a progress bar.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            mirror: None,
            progress: true,
        }
    }

    /// The cache that `KILN_DATA_DIR` (else the user's cache folder) names, with the
    /// mirror of `KILN_DATA_MIRROR` when that is set. A `KILN_DATA_DIR` that names
    /// something other than a folder, or a mirror that is not an `http://` or
    /// `https://` address, is an error naming the variable.
    pub fn from_env() -> Result<Self> {
        let dir = std::env::var_os(DATA_DIR_VAR).map(PathBuf::from);
        let mirror = std::env::var_os(MIRROR_VAR).map(|m| m.to_string_lossy().into_owned());
        Self::from_values(dir, mirror)
    }

    /// [`from_env`](Self::from_env) on the variables' values.
    fn from_values(dir: Option<PathBuf>, mirror: Option<String>) -> Result<Self> {
        let dir = match dir {
            Some(d) if !d.as_os_str().is_empty() => {
                if d.exists() && !d.is_dir() {
                    return Err(Error::Environment {
                        var: DATA_DIR_VAR,
                        value: d.display().to_string(),
                        expected: "a folder (it names a file)",
                    });
                }
                d
            }
            _ => dirs::cache_dir().ok_or(Error::NoCacheDir)?.join("kiln"),
        };
        let mut cache = Self::new(dir);
        if let Some(m) = mirror.filter(|m| !m.is_empty()) {
            if !(m.starts_with("http://") || m.starts_with("https://")) {
                return Err(Error::Environment {
                    var: MIRROR_VAR,
                    value: m,
                    expected: "an http:// or https:// address",
                });
            }
            cache.mirror = Some(m);
        }
        Ok(cache)
    }

    /// The same cache fetching every file from `base_url/<file name>`.
    pub fn with_mirror(mut self, base_url: impl Into<String>) -> Self {
        self.mirror = Some(base_url.into());
        self
    }

    /// The same cache with the progress bar on or off.
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The address `remote` is fetched from: on the mirror when there is one.
    pub fn url_of(&self, remote: &Remote) -> String {
        match &self.mirror {
            Some(m) => join_url(m, &remote.file),
            None => remote.url.clone(),
        }
    }

    /// The path of `remote` in the cache, under `folder`: verified if it is already
    /// there, else downloaded, verified and renamed into place.
    pub fn fetch(&self, remote: &Remote, folder: &str) -> Result<PathBuf> {
        let dest = self.dir.join(folder).join(&remote.file);
        if dest.is_file() {
            verify_file(&dest, &remote.checksum)?;
            return Ok(dest);
        }
        let parent = self.dir.join(folder);
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let url = self.url_of(remote);
        let hint = hand_hint(&url, &dest);
        download_to(&url, &dest, &remote.checksum, self.progress, &hint)?;
        Ok(dest)
    }
}

/// How to place a file by hand when it cannot be downloaded.
pub fn hand_hint(url: &str, dest: &Path) -> String {
    format!(
        "To work offline, download {url} by hand and place it at {} (set {DATA_DIR_VAR} to use another cache folder, or {MIRROR_VAR} to fetch from a mirror)",
        dest.display()
    )
}

/// Checks the checksum of the file at `path`, reading it in pieces.
pub fn verify_file(path: &Path, checksum: &Checksum) -> Result<()> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = checksum.hasher();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    checksum.check(&hasher.finish_hex(), path)
}

#[cfg(feature = "download")]
fn download_to(
    url: &str,
    dest: &Path,
    checksum: &Checksum,
    progress: bool,
    hint: &str,
) -> Result<()> {
    crate::download::download(url, dest, checksum, progress, hint)
}

#[cfg(not(feature = "download"))]
fn download_to(
    url: &str,
    _dest: &Path,
    _checksum: &Checksum,
    _progress: bool,
    hint: &str,
) -> Result<()> {
    Err(Error::Download {
        url: url.to_string(),
        message: "kiln-data was built without its `download` feature".to_string(),
        hint: hint.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_replaces_the_base_url() {
        let r = Remote::new("https://example.org/a/", "f.gz", Checksum::Md5("0".into()));
        assert_eq!(r.url, "https://example.org/a/f.gz");
        let c = Cache::new("/tmp/x");
        assert_eq!(c.url_of(&r), r.url);
        let c = c.with_mirror("http://127.0.0.1:9/m");
        assert_eq!(c.url_of(&r), "http://127.0.0.1:9/m/f.gz");
    }

    #[test]
    fn hint_names_the_url_and_the_place() {
        let h = hand_hint("https://x/y.gz", Path::new("/c/mnist/y.gz"));
        assert!(
            h.contains("https://x/y.gz") && h.contains("/c/mnist/y.gz") && h.contains(DATA_DIR_VAR)
        );
    }

    #[test]
    fn the_variables_are_checked() {
        let cache = Cache::from_values(Some("/c".into()), Some("https://m.org/k".into())).unwrap();
        assert_eq!(cache.dir(), Path::new("/c"));
        assert_eq!(cache.mirror.as_deref(), Some("https://m.org/k"));
        let cache = Cache::from_values(Some("/c".into()), Some(String::new())).unwrap();
        assert_eq!(cache.mirror, None);

        for mirror in ["m.org/k", "ftp://m.org", "file:///c"] {
            let err = Cache::from_values(Some("/c".into()), Some(mirror.into())).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(MIRROR_VAR) && msg.contains(mirror), "{msg}");
        }
        let file = std::env::temp_dir().join(format!("kiln-data-dir-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let msg = Cache::from_values(Some(file.clone()), None)
            .unwrap_err()
            .to_string();
        std::fs::remove_file(&file).unwrap();
        assert!(
            msg.contains(DATA_DIR_VAR) && msg.contains("names a file"),
            "{msg}"
        );
    }
}
