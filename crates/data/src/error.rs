//! The errors of `kiln-data`.
//!
//! Every error about a file names the file and the place in it (byte offset, record,
//! line and column), so that a bad download or a hand-edited table can be found.

use std::path::PathBuf;

/// What went wrong loading, preparing or batching data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A gzip stream is corrupt or ends early.
    #[error("{}: gzip data is corrupt or cut short: {message}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// A file holds no data at all.
    #[error("{}: the file is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A WAV file cannot be read: a bad header, an unsupported encoding, no samples.
    #[error("{}: {message}", path.display())]
    Wav {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file ends before the data its header or format promises.
    #[error(
        "{}: truncated in {what}: expected {expected} bytes, found {found}",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Which part is cut short (the header, record 12, ...).
        what: String,
        /// The bytes the format needs.
        expected: u64,
        /// The bytes present.
        found: u64,
    },
    /// A file that a data set streams from changed after the data set opened it:
    /// rewritten, truncated or grown while an epoch was reading it.
    #[error(
        "{}: the file changed while it was being read ({what}); reopen the data set once the file is complete",
        path.display()
    )]
    Changed {
        /// The file.
        path: PathBuf,
        /// What changed: its length or its modification time.
        what: String,
    },
    /// A file does not start with the magic number of its format.
    #[error(
        "{}: bad magic number at byte 0: expected {expected:#010x}, found {found:#010x}",
        path.display()
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The format's magic number.
        expected: u32,
        /// What the file holds.
        found: u32,
    },
    /// A header field is invalid (an unsupported element type, a zero dimension).
    #[error("{}: bad header at byte {offset}: {message}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// The byte offset of the field.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// A label is not one of the data set's classes.
    #[error(
        "{}: record {record} has label {label}, outside the {classes} classes 0..{classes}",
        path.display()
    )]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// The record (0-based).
        record: usize,
        /// The label found.
        label: i64,
        /// The number of classes.
        classes: usize,
    },
    /// A cell or row of a delimited text file is invalid.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The column (1-based field number).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A JSON file is not valid JSON.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The character on the line (1-based).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A cell of a table does not fit its column (a word in a number column, a
    /// category unseen in training), named by its column, its row and its line.
    #[error("{}:{line}: column `{column}`, row {row}: {message}", path.display())]
    Cell {
        /// The file (or the name given to rows parsed from memory).
        path: PathBuf,
        /// The column's name.
        column: String,
        /// The data row (1-based, the header not counted; the record of a JSON file).
        row: usize,
        /// The line of the file where the cell is (1-based).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A column of a table cannot be read or cleaned as asked (absent, of the wrong
    /// kind, without a value to fit a statistic on).
    #[error("{}: column `{column}`: {message}", path.display())]
    Column {
        /// The file (or the name given to rows parsed from memory).
        path: PathBuf,
        /// The column's name.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// A table as a whole is unusable (a JSON file that is not an array of records,
    /// no rows left after cleaning).
    #[error("{}: {message}", path.display())]
    Table {
        /// The file (or the name given to rows parsed from memory).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Two files that belong together disagree (60,000 images but 59,999 labels).
    #[error("{message}")]
    Mismatch {
        /// Both sides, with their files.
        message: String,
    },
    /// A file's checksum is not the published one.
    #[error(
        "{}: {algorithm} checksum mismatch: expected {expected}, found {found}; delete the file and fetch it again",
        path.display()
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// `md5` or `sha256`.
        algorithm: &'static str,
        /// The published checksum (hex).
        expected: String,
        /// The file's checksum (hex).
        found: String,
    },
    /// A file the loader needs is not there.
    #[error("{}: not found; {hint}", path.display())]
    Missing {
        /// The file looked for.
        path: PathBuf,
        /// How to get it.
        hint: String,
    },
    /// An archive lacks a member or holds a bad one.
    #[error("{}: {message}", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A download failed; nothing was cached.
    #[error("downloading {url} failed: {message}. {hint}")]
    Download {
        /// The address.
        url: String,
        /// What went wrong.
        message: String,
        /// How to place the file by hand.
        hint: String,
    },
    /// No cache folder: neither `KILN_DATA_DIR` nor a user cache folder is known.
    #[error("no cache folder: set KILN_DATA_DIR to a writable folder")]
    NoCacheDir,
    /// An environment variable kiln reads holds a value it cannot use.
    #[error("the environment variable {var} is {value:?}: expected {expected}")]
    Environment {
        /// The variable.
        var: &'static str,
        /// What it holds.
        value: String,
        /// The values it takes.
        expected: &'static str,
    },
    /// An argument is invalid (a batch size of 0, split fractions above 1).
    #[error("{0}")]
    Config(String),
    /// A sample index is past the end of a data set.
    #[error("sample {index} is out of range for a data set of {len} samples")]
    Index {
        /// The index asked for.
        index: usize,
        /// The data set's length.
        len: usize,
    },
    /// A batcher worker thread panicked (a bug in a [`Dataset`](crate::Dataset) implementation).
    #[error("a batcher worker panicked while filling batch {batch}")]
    WorkerPanicked {
        /// The batch it was filling.
        batch: usize,
    },
}

/// The result type of `kiln-data`.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
