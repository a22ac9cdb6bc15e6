//! The callback's own bookkeeping: a write that fails stops the logging with a
//! message and nothing else. Reading the files back with TensorBoard is
//! `crates/train/tests/tensorboard.rs`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::*;

/// A disk that holds `room` bytes, then answers as a full one does.
struct Disk {
    written: Arc<Mutex<Vec<u8>>>,
    room: usize,
}

impl Write for Disk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut written = self
            .written
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        if written.len() + buf.len() > self.room {
            // ENOSPC.
            return Err(std::io::Error::from_raw_os_error(28));
        }
        written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logging_to(room: usize) -> (TensorBoard, Arc<Mutex<Vec<u8>>>) {
    let written = Arc::new(Mutex::new(Vec::new()));
    let disk = Disk {
        written: Arc::clone(&written),
        room,
    };
    let train = EventWriter::new(Box::new(disk), PathBuf::from("logs/run/train/events")).unwrap();
    let mut tb = TensorBoard::new("logs");
    let now = Instant::now();
    tb.run = Some(Run {
        dir: PathBuf::from("logs/run"),
        train,
        validation: None,
        epoch: 0,
        epoch_started: now,
        last_batch: now,
        train_seconds: 1.0,
    });
    (tb, written)
}

fn log(epoch: usize) -> EpochLog {
    EpochLog {
        epoch,
        values: vec![("loss".into(), 0.5), ("accuracy".into(), 0.75)],
        learning_rate: 1e-3,
        seconds: 1.0,
    }
}

#[test]
fn a_full_disk_stops_the_logging_with_the_reason_and_nothing_else() {
    let (mut tb, written) = logging_to(200);
    tb.epoch_scalars(&log(0), 100);
    assert!(tb.stopped.is_none());
    let after_first = written.lock().unwrap().len();
    assert!(after_first > 30, "{after_first} bytes");
    // The second epoch's record does not fit.
    for epoch in 1..4 {
        tb.run.as_mut().unwrap().epoch = epoch;
        tb.epoch_scalars(&log(epoch), 100);
        if tb.stopped.is_some() {
            break;
        }
    }
    let why = tb.stopped.clone().expect("logging stopped");
    assert!(
        why.starts_with("TensorBoard logging stopped at epoch ")
            && why.contains("cannot write logs/run/train/events")
            && why.contains("No space left on device")
            && why.ends_with("training goes on"),
        "{why}"
    );
    // Later epochs write nothing and report nothing more.
    let len = written.lock().unwrap().len();
    tb.epoch_scalars(&log(5), 100);
    tb.flush();
    assert_eq!(written.lock().unwrap().len(), len);
    assert!(tb.run.is_none());
}

#[test]
fn validation_values_go_to_their_own_folder_under_the_training_names() {
    let dir = std::env::temp_dir().join(format!("kiln-tb-unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut tb, written) = logging_to(1 << 20);
    tb.run.as_mut().unwrap().dir = dir.clone();
    let mut log = log(0);
    log.values.push(("val_loss".into(), 0.25));
    tb.epoch_scalars(&log, 100);
    tb.flush();
    assert!(tb.stopped.is_none());
    let train = String::from_utf8_lossy(&written.lock().unwrap()).into_owned();
    assert!(train.contains("epoch_loss") && !train.contains("val_loss"));
    let files: Vec<_> = std::fs::read_dir(dir.join("validation")).unwrap().collect();
    assert_eq!(files.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_stamps_are_utc_dates() {
    let stamp = utc_stamp();
    assert_eq!(stamp.len(), 15, "{stamp}");
    assert_eq!(&stamp[8..9], "-");
    assert!(stamp[..4].parse::<u32>().unwrap() >= 2024);
}
