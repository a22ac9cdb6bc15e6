//! Bad files on disk: truncated, wrong magic numbers, labels out of range, ragged
//! tables, empty files, corrupt gzip. Each is an error that names the file and the
//! place; none panics.

// The helpers below are shared by the tests; a failing call fails the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::{Scratch, gzip};
use kiln_data::cifar::{self, RECORD_LEN};
use kiln_data::csv::{self, CsvOptions};
use kiln_data::{Error, idx, mnist};

fn write(dir: &Scratch, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn cifar_record(label: u8) -> Vec<u8> {
    let mut r = vec![label];
    r.resize(RECORD_LEN, 7);
    r
}

#[test]
fn cifar_files() {
    let dir = Scratch::new("bad-cifar");
    let mut two = cifar_record(1);
    two.extend(cifar_record(2));

    let p = write(&dir, "short.bin", &two[..RECORD_LEN + 10]);
    let err = cifar::load_file(&p).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Truncated {
                expected: 3073,
                found: 10,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("short.bin") && msg.contains("record 1 (starting at byte 3073)"),
        "{msg}"
    );

    let p = write(&dir, "short.bin.gz", &gzip(&two[..RECORD_LEN + 10]));
    assert!(
        cifar::load_file(&p)
            .unwrap_err()
            .to_string()
            .contains("short.bin.gz: truncated")
    );

    let mut bad = two.clone();
    bad[RECORD_LEN] = 10;
    let p = write(&dir, "label.bin", &bad);
    let err = cifar::load_file(&p).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: record 1 has label 10, outside the 10 classes 0..10",
            p.display()
        )
    );

    let p = write(&dir, "empty.bin", b"");
    assert!(matches!(cifar::load_file(&p), Err(Error::Empty { .. })));

    let z = gzip(&two);
    let p = write(&dir, "cut.bin.gz", &z[..z.len() - 20]);
    let err = cifar::load_file(&p).unwrap_err();
    assert!(
        matches!(err, Error::Gzip { .. }) && err.to_string().contains("cut.bin.gz"),
        "{err}"
    );

    let missing = dir.path().join("nope.bin");
    assert!(matches!(cifar::load_file(&missing), Err(Error::Io { .. })));

    // The official files are checked against their MD5s.
    for (name, _) in cifar::OFFICIAL_FILES {
        write(&dir, name, &two);
    }
    let err = cifar::load_dir(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Checksum {
                algorithm: "md5",
                ..
            }
        ),
        "{err}"
    );
    let (train, test) = cifar::Cifar10::official()
        .unverified()
        .load_dir(dir.path())
        .unwrap();
    assert_eq!((train.len(), test.len()), (10, 2));
}

#[test]
fn cifar_stream_reads_records_on_demand() {
    use kiln_data::Dataset;
    let dir = Scratch::new("cifar-stream");
    let mut a = cifar_record(1);
    a.extend(cifar_record(2));
    let b = cifar_record(3);
    let pa = write(&dir, "a.bin", &a);
    let pb = write(&dir, "b.bin", &b);
    let s = cifar::Stream::open(&[pa.clone(), pb]).unwrap();
    assert_eq!(s.len(), 3);
    let memory = cifar::load_file(&pa).unwrap();
    assert_eq!(s.get(1).unwrap(), memory.get(1).unwrap());
    assert!(matches!(s.get(3), Err(Error::Index { .. })));

    let mut bad = a.clone();
    bad[RECORD_LEN] = 200;
    let p = write(&dir, "bad.bin", &bad);
    let s = cifar::Stream::open(&[p]).unwrap();
    assert!(s.get(0).is_ok());
    assert!(matches!(
        s.get(1),
        Err(Error::LabelOutOfRange {
            record: 1,
            label: 200,
            ..
        })
    ));

    let p = write(&dir, "short.bin", &a[..100]);
    assert!(matches!(
        cifar::Stream::open(&[p]),
        Err(Error::Truncated { .. })
    ));
    let p = write(&dir, "z.bin.gz", &gzip(&a));
    assert!(
        cifar::Stream::open(&[p])
            .unwrap_err()
            .to_string()
            .contains("cannot be streamed")
    );
}

#[test]
fn cifar_stream_names_a_file_that_changes_mid_epoch() {
    use kiln_data::{Dataset, Origin};
    use std::time::{Duration, SystemTime};
    let dir = Scratch::new("cifar-stream-change");
    let mut three = cifar_record(1);
    three.extend(cifar_record(2));
    three.extend(cifar_record(3));
    let p = write(&dir, "a.bin", &three);
    let other = write(&dir, "b.bin", &cifar_record(4));
    let s = cifar::Stream::open(&[p.clone(), other]).unwrap();
    assert_eq!(
        s.origin(3),
        Some(Origin {
            file: dir.path().join("b.bin").display().to_string(),
            place: Some("record 0".into()),
        })
    );
    assert!(s.get(2).is_ok());

    // Truncated (a copy over it, still in progress): every record of the file, even
    // one still present, is refused.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(RECORD_LEN as u64)
        .unwrap();
    for index in [0, 2] {
        let err = s.get(index).unwrap_err();
        assert!(matches!(err, Error::Changed { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: the file changed while it was being read ({} bytes now, {} when opened); \
                 reopen the data set once the file is complete",
                p.display(),
                RECORD_LEN,
                3 * RECORD_LEN
            )
        );
    }
    // The other file reads on.
    assert!(s.get(3).is_ok());

    // Rewritten in place at the same length: the modification time tells.
    let p = write(&dir, "c.bin", &three);
    let s = cifar::Stream::open(std::slice::from_ref(&p)).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    file.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    let err = s.get(1).unwrap_err();
    assert!(
        err.to_string().contains("(modified since it was opened)"),
        "{err}"
    );

    // Replaced by a rename, as a finished download is: the open file keeps its
    // records, consistently.
    let p = write(&dir, "d.bin", &three);
    let s = cifar::Stream::open(std::slice::from_ref(&p)).unwrap();
    let first = s.get(0).unwrap();
    let fresh = write(&dir, "d.bin.new", &cifar_record(9));
    std::fs::rename(&fresh, &p).unwrap();
    assert_eq!(s.get(0).unwrap(), first);
    assert_eq!(s.len(), 3);
}

#[test]
fn idx_files() {
    let dir = Scratch::new("bad-idx");
    let images = idx::encode(&[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
    let labels = idx::encode(&[2], &[3, 4]);
    let pi = write(&dir, "img.idx", &images);
    let pl = write(&dir, "lab.idx.gz", &gzip(&labels));
    assert_eq!(
        mnist::load_files(&pi, &pl).unwrap().labels().unwrap(),
        &[3, 4]
    );

    let p = write(&dir, "swapped.idx", &labels);
    let err = mnist::load_files(&p, &pl).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: bad magic number at byte 0: expected 0x00000803, found 0x00000801",
            p.display()
        )
    );

    let p = write(&dir, "short.idx", &images[..images.len() - 3]);
    let err = mnist::load_files(&p, &pl).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Truncated {
                expected: 8,
                found: 5,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("short.idx"));

    let p = write(&dir, "big-label.idx", &idx::encode(&[2], &[3, 11]));
    let err = mnist::load_files(&pi, &p).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LabelOutOfRange {
                record: 1,
                label: 11,
                classes: 10,
                ..
            }
        ),
        "{err}"
    );

    let p = write(&dir, "empty.idx", b"");
    assert!(matches!(
        mnist::load_files(&p, &pl),
        Err(Error::Empty { .. })
    ));

    let p = write(&dir, "three-labels.idx", &idx::encode(&[3], &[1, 2, 3]));
    assert!(matches!(
        mnist::load_files(&pi, &p),
        Err(Error::Mismatch { .. })
    ));
}

#[test]
fn csv_files() {
    let dir = Scratch::new("bad-csv");
    let o = CsvOptions::default();
    let p = write(&dir, "ragged.csv", b"1,2,0\n3,4,1\n5,6\n");
    let err = csv::load(&p, &o).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}:3:3: expected 3 fields, found 2", p.display())
    );

    let p = write(&dir, "cell.csv.gz", &gzip(b"1,2,0\n3,4x,1\n"));
    let err = csv::load(&p, &o).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Csv {
                line: 2,
                column: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("cell.csv.gz:2:2: `4x` is not a number"),
        "{err}"
    );

    let p = write(&dir, "empty.csv", b"");
    assert!(matches!(csv::load(&p, &o), Err(Error::Empty { .. })));
    let p = write(&dir, "header-only.csv", b"a,b,c\n");
    let named = o.header(csv::Header::Names);
    assert!(matches!(csv::load(&p, &named), Err(Error::Empty { .. })));

    let p = write(&dir, "label.csv", b"1,2,-1\n");
    let err = csv::load(&p, &o).unwrap_err();
    assert!(
        err.to_string()
            .contains("label.csv:1:3: label -1 is not a class"),
        "{err}"
    );

    let x = write(&dir, "x.csv", b"1 2\n3 4\n");
    let y = write(&dir, "y.csv", b"1\n");
    let ws = o.delimiter(csv::Delimiter::Whitespace);
    let err = csv::load_pair(&x, &y, &ws, csv::LabelKind::Real).unwrap_err();
    assert!(
        err.to_string().contains("holds 2 rows") && err.to_string().contains("y.csv"),
        "{err}"
    );
}

#[test]
fn a_folder_with_a_cut_or_corrupt_file_names_it_and_the_record() {
    let dir = Scratch::new("cifar-dir-cut");
    let mut two = cifar_record(1);
    two.extend(cifar_record(2));
    for (name, _) in cifar::OFFICIAL_FILES {
        write(&dir, name, &two);
    }
    let mut cut = two.clone();
    cut.extend(&cifar_record(3)[..100]);
    write(&dir, "data_batch_3.bin", &cut);
    let err = cifar::Cifar10::official()
        .unverified()
        .load_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Truncated { found: 100, .. })
            && err.to_string().contains("data_batch_3.bin")
            && err.to_string().contains("record 2"),
        "{err}"
    );
    // A gzip stream that breaks off: the place is the file, the error the decoder's.
    write(&dir, "data_batch_3.bin", &two);
    std::fs::remove_file(dir.path().join("test_batch.bin")).unwrap();
    write(
        &dir,
        "test_batch.bin.gz",
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3],
    );
    let err = cifar::Cifar10::official()
        .unverified()
        .load_dir(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Gzip { .. }) && err.to_string().contains("test_batch.bin.gz"),
        "{err}"
    );
}
