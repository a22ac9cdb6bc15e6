//! Tests of reading typed tables: kinds, missing markers, quoting, records, and the
//! errors that name the column, the row and the line.

use super::*;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

const PENGUINS: &[u8] = b"species,island,bill_length_mm,sex,year,seen\n\
Adelie,Torgersen,39.1,male,2007,2007-11-11\n\
Adelie,Torgersen,NA,NA,2007,2007-11-16\n\
Gentoo,Biscoe,46.1,female,2008,NA\n\
Gentoo,\"Biscoe\",50.0,male,2009,2009-12-01\n";

fn read(bytes: &[u8]) -> Result<Frame> {
    Frame::parse_csv(bytes, "t.csv", &ReadOptions::new())
}

#[test]
fn infers_kinds_and_keeps_missing_cells() -> TestResult {
    let f = read(PENGUINS)?;
    assert_eq!(f.len(), 4);
    assert_eq!(
        f.names(),
        ["species", "island", "bill_length_mm", "sex", "year", "seen"]
    );
    let kinds: Vec<Kind> = f.columns().iter().map(Column::kind).collect();
    use Kind::{Category, Date as D, Number};
    assert_eq!(kinds, [Category, Category, Number, Category, Number, D]);
    let bill = f.column("bill_length_mm").ok_or("no bill")?;
    assert_eq!(
        bill.numbers(),
        Some(&[Some(39.1), None, Some(46.1), Some(50.0)][..])
    );
    assert_eq!(f.column("sex").map(Column::missing), Some(1));
    assert_eq!(
        f.column("island").map(Column::counts),
        Some(vec![("Biscoe".into(), 2), ("Torgersen".into(), 2)])
    );
    assert_eq!(
        f.column("seen").and_then(Column::dates).map(|d| d[3]),
        Some(Date::new(2009, 12, 1))
    );
    assert_eq!(f.origins()[2], Origin { row: 3, line: 4 });
    Ok(())
}

#[test]
fn missing_markers_are_configurable() -> TestResult {
    // `NA` is sodium here, and `-` or `n/a` mark a missing cell, in CSV and JSON alike.
    let csv = b"element,mass\nNA,22.99\nK,-\nNA,n/a\n-,39.1\n";
    let options = ReadOptions::new().missing(["-"]).also_missing("n/a");
    let f = Frame::parse_csv(csv, "t.csv", &options)?;
    let element = f.column("element").ok_or("no element")?;
    assert_eq!(element.kind(), Kind::Category);
    assert_eq!(
        element.strings(),
        Some(&[Some("NA".into()), Some("K".into()), Some("NA".into()), None][..])
    );
    assert_eq!(
        f.column("mass").and_then(Column::numbers),
        Some(&[Some(22.99), None, None, Some(39.1)][..])
    );
    assert_eq!(f.missing_markers(), ["-", "n/a"]);
    let json = br#"[{"element": "NA", "mass": "-"}, {"element": null, "mass": 39.1}, {"element": "NA", "mass": 1}]"#;
    let f = Frame::parse_json(json, "t.json", &options)?;
    assert_eq!(
        f.column("element").map(Column::missing),
        Some(1),
        "null always is"
    );
    assert_eq!(f.column("mass").map(Column::missing), Some(1));
    // With the default markers, `NA` is missing.
    let f = Frame::parse_csv(csv, "t.csv", &ReadOptions::new())?;
    assert_eq!(f.column("element").map(Column::missing), Some(2));
    Ok(())
}

#[test]
fn free_text_and_quoted_fields() -> TestResult {
    let text = b"name,price\n\"Smith, John\",1\n\"say \"\"hi\"\"\",2\n\"two\nlines\",3\nplain,4\n";
    let f = read(text)?;
    let name = f.column("name").ok_or("no name")?;
    assert_eq!(name.kind(), Kind::Text, "every value distinct: text");
    assert_eq!(
        name.strings().map(|s| s[..3].to_vec()),
        Some(vec![
            Some("Smith, John".to_string()),
            Some("say \"hi\"".to_string()),
            Some("two\nlines".to_string())
        ])
    );
    assert_eq!(
        f.origins()[3],
        Origin { row: 4, line: 6 },
        "the quoted line break counts"
    );
    let f = Frame::parse_csv(
        b"a;b\n1;x\n2;x\n",
        "t.csv",
        &ReadOptions::new().delimiter(b';'),
    )?;
    assert_eq!(f.column("b").map(Column::kind), Some(Kind::Category));
    Ok(())
}

#[test]
fn a_stray_word_names_column_row_and_line() -> TestResult {
    let text = b"x,y\n1,a\n2,b\n\n3,a\nheavy,b\n5,a\n";
    let err = read(text).err().ok_or("a stray word read as a number")?;
    assert!(
        matches!(&err, Error::Cell { column, row: 4, line: 6, .. } if column == "x"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("t.csv:6: column `x`, row 4: `heavy` is not a number, but 4 of the column's 4 other cells are"),
        "{msg}"
    );
    // Either reading works once the user says what the word is.
    let as_category =
        Frame::parse_csv(text, "t.csv", &ReadOptions::new().kind("x", Kind::Category))?;
    assert_eq!(
        as_category.column("x").map(Column::kind),
        Some(Kind::Category)
    );
    let as_missing = Frame::parse_csv(text, "t.csv", &ReadOptions::new().also_missing("heavy"))?;
    assert_eq!(as_missing.column("x").map(Column::missing), Some(1));
    // A forced kind that a cell does not fit.
    let err = Frame::parse_csv(
        b"d\n2020-01-01\nsoon\n",
        "t.csv",
        &ReadOptions::new().kind("d", Kind::Date),
    )
    .err()
    .ok_or("`soon` read as a date")?;
    assert_eq!(
        err.to_string(),
        "t.csv:3: column `d`, row 2: `soon` is not a date (YYYY-MM-DD), and the column is read as dates"
    );
    Ok(())
}

#[test]
fn bad_csv_files() {
    let err = |bytes: &[u8], opts: &ReadOptions| {
        Frame::parse_csv(bytes, "t.csv", opts)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let o = ReadOptions::new();
    assert_eq!(
        err(b"a,b\n1,2\n3\n", &o),
        "t.csv:3:2: expected 2 fields, as the header names, found 1"
    );
    assert_eq!(
        err(b"a,a\n1,2\n", &o),
        "t.csv:1:2: the header names column `a` twice"
    );
    assert_eq!(
        err(b"a,b\n", &o),
        "t.csv: the file holds a header but no rows"
    );
    assert_eq!(err(b"", &o), "t.csv: the file is empty");
    assert!(err(b"a\n\"open\n", &o).contains("a quoted field is not closed"));
    assert!(err(b"a\n\"x\"y\n", &o).contains("after a quoted field's closing quote"));
    assert!(err(b"a\n\xff\n", &o).contains("t.csv:2:1: not UTF-8"));
    assert_eq!(
        err(b"a,b\n1,2\n", &o.clone().kind("c", Kind::Number)),
        "t.csv: column `c`: ReadOptions::kind names a column the file does not have; its columns are `a`, `b`"
    );
}

#[test]
fn json_records_with_nulls_and_absent_keys() -> TestResult {
    let text = br#"[
  {"Name": "chevrolet", "mpg": 18, "hp": 130, "Year": "1970-01-01", "Origin": "USA", "turbo": false},
  {"Name": "citroen", "mpg": null, "hp": 115, "Year": "1970-01-01", "Origin": "Europe"},
  {"Name": "ford", "mpg": 25, "hp": "?", "Year": "1971-01-01", "Origin": "USA", "turbo": true}
]"#;
    let f = Frame::parse_json(text, "cars.json", &ReadOptions::new())?;
    assert_eq!(f.names(), ["Name", "mpg", "hp", "Year", "Origin", "turbo"]);
    assert_eq!(
        f.column("mpg").and_then(Column::numbers),
        Some(&[Some(18.0), None, Some(25.0)][..])
    );
    assert_eq!(
        f.column("hp").map(Column::missing),
        Some(1),
        "`?` is missing"
    );
    assert_eq!(f.column("Year").map(Column::kind), Some(Kind::Date));
    assert_eq!(f.column("Origin").map(Column::kind), Some(Kind::Category));
    assert_eq!(f.column("Name").map(Column::kind), Some(Kind::Text));
    let turbo = f.column("turbo").ok_or("no turbo")?;
    assert_eq!(
        turbo.strings(),
        Some(&[Some("false".into()), None, Some("true".into())][..])
    );
    assert_eq!(f.origins()[1], Origin { row: 2, line: 3 });
    // A number read as a category keeps its text.
    let f = Frame::parse_json(
        text,
        "cars.json",
        &ReadOptions::new().kind("mpg", Kind::Category),
    )?;
    assert_eq!(
        f.column("mpg")
            .and_then(Column::strings)
            .map(|s| s[0].clone()),
        Some(Some("18".into()))
    );
    Ok(())
}

#[test]
fn json_that_is_not_records() {
    let err = |bytes: &[u8]| {
        Frame::parse_json(bytes, "t.json", &ReadOptions::new())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        err(br#"{"mpg": {"0": 18}}"#),
        "t.json: is not an array of records: it holds an object (line 1); a table in JSON is an \
         array of records, `[{\"column\": value, ...}, ...]`, as pandas' to_json(orient=\"records\") writes it"
    );
    assert!(
        err(b"[{\"a\": 1},\n 7]")
            .starts_with("t.json: record 2 (line 2) is a number, not an object")
    );
    assert_eq!(
        err(b"[{\"a\": 1},\n {\"a\":\n [1, 2]}]"),
        "t.json:3: column `a`, row 2: holds an array; a cell is a number, a string, a boolean or null"
    );
    assert_eq!(
        err(b"[{\"a\": 1},\n {\"a\" 2}]"),
        "t.json:2:7: expected `:` after a key, found `2`"
    );
    assert_eq!(err(b"[]"), "t.json: the array holds no records");
    assert_eq!(err(b"  \n"), "t.json: the file is empty");
    assert!(
        err(b"[{\"a\": 1}, {\"a\": 2}, {\"a\": \"x\"}, {\"a\": 4}]")
            .starts_with("t.json:1: column `a`, row 3: `x` is not a number")
    );
}

#[test]
fn select_drop_missing_and_labels() -> TestResult {
    let f = read(PENGUINS)?;
    let part = f.select(&[3, 0])?;
    assert_eq!(
        part.origins()[0].row,
        4,
        "rows keep their place in the file"
    );
    assert!(f.select(&[4]).is_err());
    let with_sex = f.drop_missing("sex")?;
    assert_eq!(with_sex.len(), 3);
    assert_eq!(f.labels("species")?, [0, 0, 1, 1]);
    let err = f.labels("sex").err().ok_or("a missing class")?;
    assert!(
        err.to_string()
            .starts_with("t.csv:3: column `sex`, row 2: is missing"),
        "{err}"
    );
    let err = f.labels("year").err().ok_or("labels of numbers")?;
    assert!(err.to_string().contains("is a number column"), "{err}");
    let err = f.drop_missing("weight").err().ok_or("an absent column")?;
    assert!(
        err.to_string()
            .contains("no such column; the columns are `species`"),
        "{err}"
    );
    Ok(())
}

#[test]
fn frames_built_in_code() -> TestResult {
    let f = Frame::new(
        "rows",
        vec![
            Column::new("x", Kind::Number, Cells::Numbers(vec![Some(1.0), None]))?,
            Column::new(
                "c",
                Kind::Category,
                Cells::Strings(vec![Some("a".into()), None]),
            )?,
        ],
    )?;
    assert_eq!(f.len(), 2);
    assert!(Column::new("x", Kind::Number, Cells::Strings(vec![])).is_err());
    assert!(Column::new("x", Kind::Number, Cells::Numbers(vec![Some(f64::NAN)])).is_err());
    let short = Column::new("y", Kind::Number, Cells::Numbers(vec![None]))?;
    assert!(Frame::new("rows", vec![f.columns()[0].clone(), short]).is_err());
    Ok(())
}

#[test]
fn describe_counts_quartiles_and_categories() -> TestResult {
    let d = read(PENGUINS)?.describe();
    let bill = &d.columns[2];
    assert_eq!((bill.count, bill.missing), (3, 1));
    let [mean, std, min, q25, q50, q75, max] = bill.numbers.ok_or("no numbers")?;
    // pandas: pd.Series([39.1, 46.1, 50.0]).describe()
    assert!((mean - 45.066_666_666_666_67).abs() < 1e-9);
    assert!((std - 5.522_982_286_168_708).abs() < 1e-9, "{std}");
    assert_eq!((min, q50, max), (39.1, 46.1, 50.0));
    assert!((q25 - 42.6).abs() < 1e-12 && (q75 - 48.05).abs() < 1e-12);
    assert_eq!(d.columns[1].top(), Some(("Biscoe", 2)));
    assert_eq!(
        d.columns[5].dates,
        Date::new(2007, 11, 11).zip(Date::new(2009, 12, 1))
    );
    let text = d.to_string();
    assert!(
        text.starts_with("t.csv: 4 rows, 6 columns\ncolumn "),
        "{text}"
    );
    assert!(text.contains("island: Biscoe 2, Torgersen 2"), "{text}");
    assert!(
        text.lines().all(|l| l.trim_end() == l),
        "no trailing blanks:\n{text}"
    );
    Ok(())
}
