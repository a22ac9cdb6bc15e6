//! A checkpoint's metadata: the epoch, the history, the optimizer's state and
//! settings, the moving average's and the saved table pipeline, each replaced by or
//! spliced with the input's text, keys removed or added. Loading must return an
//! error, never panic.
#![no_main]

mod common;

use common::{Bytes, load_every_way, template};
use libfuzzer_sys::fuzz_target;

const KEYS: [&str; 8] = [
    "epoch", "history", "optimizer", "ema", "preprocessing", "format", "model", "kiln_version",
];

fuzz_target!(|data: &[u8]| {
    let mut file = template().clone();
    let mut bytes = Bytes(data);
    for _ in 0..1 + bytes.byte() % 3 {
        let key = KEYS[usize::from(bytes.byte()) % KEYS.len()];
        let how = bytes.byte() % 4;
        let text = bytes.text(255);
        let at = file.metadata.iter().position(|(k, _)| k == key);
        match (how, at) {
            (0, Some(i)) => file.metadata[i].1 = text,
            (1, Some(i)) => {
                // Spliced in: the JSON around it stays kiln's.
                let value = &mut file.metadata[i].1;
                let mut cut = text.len() % (value.len() + 1);
                while !value.is_char_boundary(cut) {
                    cut -= 1;
                }
                let end = (cut + usize::from(bytes.byte())).min(value.len());
                let end = (end..=value.len()).find(|&e| value.is_char_boundary(e)).unwrap_or(value.len());
                value.replace_range(cut..end, &text);
            }
            (2, Some(i)) => {
                file.metadata.remove(i);
            }
            _ => file.metadata.push((key.to_string(), text)),
        }
    }
    load_every_way(&file.to_bytes());
});
