//! Checkpoint loading on damaged safetensors files: a real checkpoint (weights,
//! optimizer state, a moving average, history) whose header the input rewrites
//! (dtypes, shapes, offsets, names, tensors dropped or added, data cut or grown), or
//! the input's bytes as the whole file. Loading must return an error, never panic,
//! and never load a non-finite weight unasked.
#![no_main]

mod common;

use common::{Bytes, Tensor, load_every_way, template};
use libfuzzer_sys::fuzz_target;

const DTYPES: [&str; 10] = ["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3", "f32"];

fuzz_target!(|data: &[u8]| {
    if data.first() == Some(&0xff) {
        return load_every_way(&data[1..]);
    }
    let mut file = template().clone();
    let mut bytes = Bytes(data);
    for _ in 0..bytes.byte() % 8 {
        let at = usize::from(bytes.byte());
        let count = file.tensors.len().max(1);
        let op = bytes.byte() % 9;
        if op == 6 && !file.tensors.is_empty() {
            file.tensors.remove(at % count);
            continue;
        }
        match (op, file.tensors.get_mut(at % count)) {
            (0, Some(t)) => t.dtype = DTYPES[usize::from(bytes.byte()) % DTYPES.len()].to_string(),
            (1, Some(t)) => {
                let rank = bytes.byte() % 5;
                t.shape = (0..rank).map(|_| bytes.size()).collect();
            }
            (2, Some(t)) => t.offsets = Some((bytes.size(), bytes.size())),
            (3, Some(t)) => {
                let end = t.bytes.len();
                let cut = usize::from(bytes.byte()) % (end + 1);
                t.bytes.truncate(cut);
            }
            (4, Some(t)) => {
                // A value replaced: NaN, an infinity, anything.
                let i = usize::from(bytes.byte()) * 4;
                if i + 4 <= t.bytes.len() {
                    let value = bytes.u64() as u32;
                    t.bytes[i..i + 4].copy_from_slice(&value.to_le_bytes());
                }
            }
            (5, Some(t)) => t.name = bytes.text(24),
            (7, _) => file.tensors.push(Tensor {
                name: bytes.text(24),
                dtype: DTYPES[usize::from(bytes.byte()) % DTYPES.len()].to_string(),
                shape: vec![bytes.size()],
                offsets: None,
                bytes: bytes.take(64).to_vec(),
            }),
            _ => file.trailer = bytes.take(64).to_vec(),
        }
    }
    load_every_way(&file.to_bytes());
});
