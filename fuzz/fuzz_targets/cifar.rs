//! The CIFAR-10 record parser on arbitrary bytes, plain and through the gzip decoder.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.bin");
    if let Ok(d) = kiln_data::cifar::parse(data, path) {
        assert_eq!(d.len() * kiln_data::cifar::RECORD_LEN, data.len());
    }
    if let Ok(plain) = kiln_data::read::decode(data, path) {
        let _ = kiln_data::cifar::parse(&plain, path);
    }
});
