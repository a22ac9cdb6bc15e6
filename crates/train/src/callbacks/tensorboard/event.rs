//! TensorBoard's event files: records of serialised `Event`s, each framed by its
//! length and CRC-32C checksums (TFRecord), and the summaries that go in them.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use super::proto::{
    DT_STRING, Data, Dim, Event, HistogramProto, Image, PluginData, Summary, SummaryMetadata,
    TensorProto, TensorShapeProto, Value, What,
};

/// The checksum TFRecord stores: CRC-32C, rotated and offset so that a checksum of
/// data holding checksums stays well distributed.
pub(crate) fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One record: the length (u64), its masked CRC, the data, the data's masked CRC,
/// all little-endian.
pub(crate) fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A write that failed: the file and what the system said.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) path: PathBuf,
    pub(crate) source: std::io::Error,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write {}: {}", self.path.display(), self.source)
    }
}

/// An event file being written: a folder's `events.out.tfevents.*` file.
pub(crate) struct EventWriter {
    out: Box<dyn Write + Send>,
    /// The file, for messages.
    pub(crate) path: PathBuf,
}

impl EventWriter {
    /// A new event file in `folder` (which must exist), named as TensorFlow names
    /// them, with the version record written.
    pub(crate) fn create(folder: &Path) -> Result<Self, Failure> {
        static FILES: AtomicU64 = AtomicU64::new(0);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty() && !h.contains(['/', '\\']))
            .unwrap_or_else(|| "localhost".into());
        let name = format!(
            "events.out.tfevents.{}.{host}.{}.{}.v2",
            now() as u64,
            std::process::id(),
            FILES.fetch_add(1, Ordering::Relaxed)
        );
        let path = folder.join(name);
        match File::create(&path) {
            Ok(file) => Self::new(Box::new(BufWriter::new(file)), path),
            Err(source) => Err(Failure { path, source }),
        }
    }

    /// A writer over `out` (a file, or a test's sink), with the version record
    /// written.
    pub(crate) fn new(out: Box<dyn Write + Send>, path: PathBuf) -> Result<Self, Failure> {
        let mut writer = Self { out, path };
        writer.write(&Event {
            wall_time: now(),
            step: 0,
            what: Some(What::FileVersion("brain.Event:2".into())),
        })?;
        writer.flush()?;
        Ok(writer)
    }

    fn write(&mut self, event: &Event) -> Result<(), Failure> {
        let written = self.out.write_all(&record(&event.encode_to_vec()));
        written.map_err(|source| self.failure(source))
    }

    fn failure(&self, source: std::io::Error) -> Failure {
        Failure {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes `values` as one event at `step`.
    pub(crate) fn summary(&mut self, step: usize, values: Vec<Value>) -> Result<(), Failure> {
        if values.is_empty() {
            return Ok(());
        }
        self.write(&Event {
            wall_time: now(),
            step: i64::try_from(step).unwrap_or(i64::MAX),
            what: Some(What::Summary(Summary { value: values })),
        })
    }

    /// Hands what is buffered to the system, so that TensorBoard sees it.
    pub(crate) fn flush(&mut self) -> Result<(), Failure> {
        let flushed = self.out.flush();
        flushed.map_err(|source| self.failure(source))
    }
}

/// A scalar.
pub(crate) fn scalar(tag: &str, value: f64) -> Value {
    Value {
        tag: tag.to_string(),
        metadata: None,
        data: Some(Data::SimpleValue(value as f32)),
    }
}

/// A histogram of `values` in `buckets` equal buckets between their smallest and
/// largest finite value (TensorBoard re-buckets for display).
pub(crate) fn histogram(tag: &str, values: &[f32], buckets: usize) -> Value {
    let finite = values
        .iter()
        .map(|&v| f64::from(v))
        .filter(|v| v.is_finite());
    let (mut min, mut max, mut num, mut sum, mut sum_squares) =
        (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0.0, 0.0);
    for v in finite.clone() {
        min = min.min(v);
        max = max.max(v);
        num += 1.0;
        sum += v;
        sum_squares += v * v;
    }
    if num == 0.0 {
        (min, max) = (0.0, 0.0);
    }
    let buckets = if max > min { buckets.max(1) } else { 1 };
    let width = (max - min) / buckets as f64;
    let mut counts = vec![0.0; buckets];
    for v in finite {
        let i = if width > 0.0 {
            (((v - min) / width) as usize).min(buckets - 1)
        } else {
            0
        };
        counts[i] += 1.0;
    }
    let mut bucket_limit: Vec<f64> = (1..buckets).map(|i| min + width * i as f64).collect();
    bucket_limit.push(max);
    Value {
        tag: tag.to_string(),
        metadata: None,
        data: Some(Data::Histo(HistogramProto {
            min,
            max,
            num,
            sum,
            sum_squares,
            bucket_limit,
            bucket: counts,
        })),
    }
}

/// Text (Markdown) for TensorBoard's text dashboard.
pub(crate) fn text(tag: &str, markdown: &str) -> Value {
    Value {
        tag: tag.to_string(),
        metadata: Some(SummaryMetadata {
            plugin_data: Some(PluginData {
                plugin_name: "text".into(),
                content: Vec::new(),
            }),
        }),
        data: Some(Data::Tensor(TensorProto {
            dtype: DT_STRING,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![Dim { size: 1 }],
            }),
            string_val: vec![markdown.as_bytes().to_vec()],
        })),
    }
}

/// An image of `(height, width, channels)` bytes, HWC, as a PNG; `None` when the
/// channels are not 1 (grey), 3 (RGB) or 4 (RGBA), or encoding fails.
pub(crate) fn image(
    tag: &str,
    (height, width, channels): (usize, usize, usize),
    pixels: &[u8],
) -> Option<Value> {
    let color = match channels {
        1 => png::ColorType::Grayscale,
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        _ => return None,
    };
    let mut encoded = Vec::new();
    {
        let mut encoder = png::Encoder::new(
            &mut encoded,
            u32::try_from(width).ok()?,
            u32::try_from(height).ok()?,
        );
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().ok()?;
        writer.write_image_data(pixels).ok()?;
    }
    Some(Value {
        tag: tag.to_string(),
        metadata: None,
        data: Some(Data::Image(Image {
            height: i32::try_from(height).ok()?,
            width: i32::try_from(width).ok()?,
            colorspace: i32::try_from(channels).ok()?,
            encoded_image_string: encoded,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_tensorflows_masked_crc32c() {
        // CRC-32C of "123456789" is 0xe3069283 (RFC 3720's check value); masked as
        // TFRecord does: rotate right by 15, add 0xa282ead8.
        let crc: u32 = 0xe306_9283;
        assert_eq!(crc32c::crc32c(b"123456789"), crc);
        assert_eq!(
            masked_crc(b"123456789"),
            crc.rotate_right(15).wrapping_add(0xa282_ead8)
        );
        let r = record(b"abc");
        assert_eq!(r.len(), 8 + 4 + 3 + 4);
        assert_eq!(&r[..8], &3u64.to_le_bytes());
        assert_eq!(&r[12..15], b"abc");
    }

    #[test]
    fn a_histogram_counts_every_finite_value_once() {
        let Some(Data::Histo(h)) = histogram("w", &[0.0, 1.0, 2.0, 3.0, f32::NAN], 3).data else {
            panic!("not a histogram");
        };
        assert_eq!(
            (h.min, h.max, h.num, h.sum, h.sum_squares),
            (0.0, 3.0, 4.0, 6.0, 14.0)
        );
        assert_eq!(h.bucket, [1.0, 1.0, 2.0]);
        assert_eq!(h.bucket_limit, [1.0, 2.0, 3.0]);
        let Some(Data::Histo(flat)) = histogram("b", &[0.5; 4], 30).data else {
            panic!("not a histogram");
        };
        assert_eq!((flat.bucket, flat.bucket_limit), (vec![4.0], vec![0.5]));
    }
}
