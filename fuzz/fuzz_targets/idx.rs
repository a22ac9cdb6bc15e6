//! The IDX parsers on arbitrary bytes, alone and as an images + labels pair.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.idx");
    if let Ok(idx) = kiln_data::idx::parse(data, path) {
        assert_eq!(idx.data.len(), idx.dims.iter().product::<usize>());
    }
    let _ = kiln_data::idx::parse_images(data, path);
    let _ = kiln_data::idx::parse_labels(data, path, 10);
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (images, labels) = data.split_at(cut);
    let _ = kiln_data::mnist::from_bytes(images, path, labels, path);
});
