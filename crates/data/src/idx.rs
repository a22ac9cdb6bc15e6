//! The IDX format of the MNIST database: a big-endian header (two zero bytes, an
//! element type, the number of dimensions, then each dimension as a `u32`) followed
//! by the elements, row-major. MNIST and Fashion-MNIST store images (magic
//! 0x00000803: count, rows, columns) and labels (0x00000801: count) as unsigned bytes.

use std::path::Path;

use crate::error::{Error, Result};

/// The element type code of unsigned bytes.
pub const TYPE_U8: u8 = 0x08;
/// The magic number of a file of `u8` images (3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// The magic number of a file of `u8` labels (1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The content of an IDX file of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// The dimensions, outermost first (`[count, rows, cols]` for images).
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

/// Parses an IDX file of unsigned bytes held in `bytes` (uncompressed); `path` names
/// the source in errors. The data must fill the file exactly.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Idx> {
    let (dims, start) = header(bytes, path)?;
    let len = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::BadHeader {
            path: path.to_path_buf(),
            offset: 4,
            message: format!("dimensions {dims:?} overflow"),
        })?;
    let body = &bytes[start..];
    if body.len() < len {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            what: format!("the data after the {start}-byte header (dimensions {dims:?})"),
            expected: len as u64,
            found: body.len() as u64,
        });
    }
    if body.len() > len {
        return Err(Error::BadHeader {
            path: path.to_path_buf(),
            offset: (start + len) as u64,
            message: format!(
                "{} bytes follow the data that dimensions {dims:?} describe",
                body.len() - len
            ),
        });
    }
    Ok(Idx {
        dims,
        data: body.to_vec(),
    })
}

/// The dimensions and the offset of the data.
fn header(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, usize)> {
    if bytes.is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
        });
    }
    let Some(&[z0, z1, ty, nd]) = bytes.get(..4) else {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            what: "the magic number".into(),
            expected: 4,
            found: bytes.len() as u64,
        });
    };
    let magic = u32::from_be_bytes([z0, z1, ty, nd]);
    if z0 != 0 || z1 != 0 || nd == 0 {
        return Err(Error::BadMagic {
            path: path.to_path_buf(),
            expected: IMAGES_MAGIC,
            found: magic,
        });
    }
    if ty != TYPE_U8 {
        return Err(Error::BadHeader {
            path: path.to_path_buf(),
            offset: 2,
            message: format!(
                "element type {ty:#04x} is not supported; only unsigned bytes ({TYPE_U8:#04x}) are"
            ),
        });
    }
    let start = 4 + 4 * usize::from(nd);
    let Some(raw) = bytes.get(4..start) else {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            what: format!("the header ({nd} dimensions)"),
            expected: start as u64,
            found: bytes.len() as u64,
        });
    };
    let dims = raw
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    Ok((dims, start))
}

/// Parses an IDX file that must have magic number `magic`.
fn parse_expecting(bytes: &[u8], path: &Path, magic: u32) -> Result<Idx> {
    if let Some(&[a, b, c, d]) = bytes.get(..4) {
        let found = u32::from_be_bytes([a, b, c, d]);
        if found != magic {
            return Err(Error::BadMagic {
                path: path.to_path_buf(),
                expected: magic,
                found,
            });
        }
    }
    parse(bytes, path)
}

/// Images: `(count, rows, cols, pixels)` from an IDX file with magic 0x00000803.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let idx = parse_expecting(bytes, path, IMAGES_MAGIC)?;
    match idx.dims[..] {
        [n, rows, cols] if rows > 0 && cols > 0 => Ok((n, rows, cols, idx.data)),
        _ => Err(Error::BadHeader {
            path: path.to_path_buf(),
            offset: 8,
            message: format!("image size {:?} has a zero dimension", &idx.dims[1..]),
        }),
    }
}

/// Labels from an IDX file with magic 0x00000801, each checked to be below `classes`.
pub fn parse_labels(bytes: &[u8], path: &Path, classes: usize) -> Result<Vec<u32>> {
    let idx = parse_expecting(bytes, path, LABELS_MAGIC)?;
    if let Some((record, &label)) = idx
        .data
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= classes)
    {
        return Err(Error::LabelOutOfRange {
            path: path.to_path_buf(),
            record,
            label: i64::from(label),
            classes,
        });
    }
    Ok(idx.data.iter().map(|&l| u32::from(l)).collect())
}

/// An IDX file of `dims` holding `data` (for tests and for writing subsets).
pub fn encode(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, TYPE_U8, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_and_labels_round_trip() {
        let p = Path::new("x.idx");
        let px: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        let (n, r, c, data) = parse_images(&encode(&[2, 3, 4], &px), p).unwrap();
        assert_eq!((n, r, c), (2, 3, 4));
        assert_eq!(data, px);
        assert_eq!(
            parse_labels(&encode(&[3], &[0, 9, 4]), p, 10).unwrap(),
            vec![0, 9, 4]
        );
    }

    #[test]
    fn bad_headers_are_errors_with_places() {
        let p = Path::new("bad.idx");
        assert!(matches!(parse(&[], p), Err(Error::Empty { .. })));
        assert!(matches!(parse(&[0, 0, 8], p), Err(Error::Truncated { .. })));
        let err = parse_images(&encode(&[2], &[1, 2]), p).unwrap_err();
        assert!(
            matches!(
                err,
                Error::BadMagic {
                    found: 0x801,
                    expected: 0x803,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0], p).unwrap_err();
        assert!(err.to_string().contains("element type 0x0d"), "{err}");
        let err = parse(&encode(&[2, 2], &[1, 2, 3]), p).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Truncated {
                    expected: 4,
                    found: 3,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse(&encode(&[1], &[1, 2]), p).unwrap_err();
        assert!(err.to_string().contains("bad header at byte 9"), "{err}");
        let err = parse_labels(&encode(&[3], &[1, 12, 3]), p, 10).unwrap_err();
        assert!(
            matches!(
                err,
                Error::LabelOutOfRange {
                    record: 1,
                    label: 12,
                    ..
                }
            ),
            "{err}"
        );
        let huge = encode(&[u32::MAX, u32::MAX, u32::MAX], &[]);
        assert!(parse(&huge, p).is_err());
        assert!(parse_images(&encode(&[0, 0, 5], &[]), p).is_err());
    }
}
