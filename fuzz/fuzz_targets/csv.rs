//! The delimited-table parser on arbitrary bytes, with options drawn from the first
//! byte.
#![no_main]

use std::path::Path;

use kiln_data::csv::{CsvOptions, Delimiter, Header, LabelColumn, LabelKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, text)) = data.split_first() else { return };
    let options = CsvOptions {
        delimiter: match knobs & 3 {
            0 => Delimiter::Byte(b','),
            1 => Delimiter::Byte(b';'),
            2 => Delimiter::Byte(b'\t'),
            _ => Delimiter::Whitespace,
        },
        header: match (knobs >> 2) & 3 {
            0 => Header::None,
            1 => Header::Names,
            _ => Header::Sklearn,
        },
        label: match (knobs >> 4) & 3 {
            0 => LabelColumn::First,
            1 => LabelColumn::Last,
            n => LabelColumn::Index(usize::from(n)),
        },
        kind: if knobs >> 6 == 0 {
            LabelKind::Real
        } else {
            LabelKind::Class { classes: Some(usize::from(knobs >> 6) * 3) }
        },
    };
    let path = Path::new("fuzz.csv");
    if let Ok(table) = kiln_data::csv::parse_table(text, path, &options) {
        assert_eq!(table.values.len(), table.rows() * table.cols);
    }
    let _ = kiln_data::csv::parse(text, path, &options);
});
