//! Tables read from CSV (and JSON records) with every reading option drawn from the
//! input (delimiter, missing markers, forced kinds, the category limit, absent
//! columns), then cleaned by a pipeline with options drawn too, fitted, saved as JSON,
//! read back and applied. Every step must return an error or a consistent result,
//! never panic.
#![no_main]

use std::path::Path;

use kiln_data::{Encoding, Frame, Impute, Kind, ReadOptions, TablePipeline, Unknown};
use libfuzzer_sys::fuzz_target;

const KINDS: [Kind; 4] = [Kind::Number, Kind::Category, Kind::Text, Kind::Date];

fuzz_target!(|data: &[u8]| {
    let [a, b, c, d, text @ ..] = data else { return };
    let mut options = ReadOptions::new().delimiter(match a % 5 {
        0 => b',',
        1 => b';',
        2 => b'\t',
        3 => b'|',
        _ => *b,
    });
    if b & 1 == 1 {
        options = options.missing(["", "NA", "?"]);
    }
    if b & 2 == 2 {
        options = options.also_missing("-");
    }
    if b & 4 == 4 {
        options = options.kind("a", KINDS[usize::from(c % 4)]);
    }
    if b & 8 == 8 {
        options = options.kind("b", KINDS[usize::from((c >> 2) % 4)]);
    }
    options = options.max_categories(usize::from(d % 40));
    let source = Path::new("fuzz.csv");
    let frame = if a & 0x80 == 0 {
        Frame::parse_csv(text, source, &options)
    } else {
        Frame::parse_json(text, source, &options)
    };
    let Ok(frame) = frame else { return };
    let Some(target) = frame.names().first().map(|s| s.to_string()) else { return };
    let mut pipeline = TablePipeline::new(target);
    pipeline = match c % 4 {
        0 => pipeline.impute(Impute::Mean),
        1 => pipeline.impute(Impute::Median),
        2 => pipeline.impute(Impute::MostFrequent),
        _ => pipeline.impute(Impute::Constant(f64::from(*d))),
    };
    if d & 1 == 1 {
        pipeline = pipeline.missing_indicators();
    }
    if d & 2 == 2 {
        pipeline = pipeline.drop_duplicates();
    }
    if d & 4 == 4 {
        pipeline = pipeline.drop_rows_missing_over(f64::from(d >> 4) / 15.0);
    }
    if d & 8 == 8 {
        pipeline = pipeline.clip_quantiles(0.05, 0.95);
    }
    if d & 16 == 16 {
        pipeline = pipeline.drop_columns_missing_over(0.5);
    }
    if d & 32 == 32 {
        pipeline = pipeline.impute_categories(Impute::MostFrequent);
    }
    pipeline = pipeline
        .encode(if c & 16 == 0 { Encoding::OneHot } else { Encoding::Ordinal })
        .unknown(if c & 32 == 0 { Unknown::Error } else { Unknown::Reserved });
    pipeline = if c & 64 == 0 { pipeline.standardize() } else { pipeline.min_max() };
    let Ok(fitted) = pipeline.fit(&frame) else { return };
    let json = fitted.to_json();
    let back = kiln_data::FittedPipeline::from_json(&json).expect("a saved pipeline reads back");
    assert_eq!(back.to_json(), json);
    if let Ok(set) = fitted.transform(&frame) {
        assert_eq!(kiln_data::Dataset::len(&set), set.targets().len());
    }
});
