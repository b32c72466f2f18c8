//! Malformed data is an error naming the file and, where known, the row or line.

use std::sync::Arc;

use arrow::array::{Array, ListArray, StringArray};
use arrow::datatypes::Int32Type;

use super::*;
use crate::data::{messages_batch, read_dataset};

#[test]
fn parquet_without_usable_columns() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch(vec![
        ("question", strings(&["q"])),
        ("answer", strings(&["a"])),
    ]);
    let e = err_text(read_dataset(
        &parquet_file(dir.path(), "qa.parquet", &b),
        None,
    ));
    assert!(
        e.contains("qa.parquet") && e.contains("no usable columns") && e.contains("question"),
        "{e}"
    );
    let b = batch(vec![
        ("prompt", strings(&["q"])),
        ("answer", strings(&["a"])),
    ]);
    let e = err_text(read_dataset(
        &parquet_file(dir.path(), "p.parquet", &b),
        None,
    ));
    assert!(e.contains("needs a `completion` column"), "{e}");
}

#[test]
fn parquet_wrong_types_name_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch(vec![("text", ints(&[1, 2]))]);
    let e = err_text(read_dataset(
        &parquet_file(dir.path(), "int.parquet", &b),
        None,
    ));
    assert!(
        e.contains("int.parquet, row 0") && e.contains("`text` must be a string, found a number"),
        "{e}"
    );
    // `messages` as a plain string column.
    let b = batch(vec![("messages", strings(&["[{\"role\": \"user\"}]"]))]);
    let e = err_text(read_dataset(
        &parquet_file(dir.path(), "s.parquet", &b),
        None,
    ));
    assert!(
        e.contains("s.parquet, row 0") && e.contains("must be a list"),
        "{e}"
    );
    // `messages` as a list of strings rather than of {role, content}.
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1)])]);
    let b = batch(vec![("messages", Arc::new(list) as ArrayRef)]);
    let e = err_text(read_dataset(
        &parquet_file(dir.path(), "l.parquet", &b),
        None,
    ));
    assert!(
        e.contains("row 0") && e.contains("messages[0]") && e.contains("must be an object"),
        "{e}"
    );
}

#[test]
fn parquet_null_cell_names_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let prompts: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), Some("b"), None]));
    let b = batch(vec![
        ("prompt", prompts),
        ("completion", strings(&["x", "y", "z"])),
    ]);
    let e = err_text(read_dataset(
        &parquet_file(dir.path(), "n.parquet", &b),
        None,
    ));
    assert!(
        e.contains("n.parquet, row 2") && e.contains("`prompt` is missing or null"),
        "{e}"
    );
}

#[test]
fn parquet_message_without_content_names_row_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let convs = vec![
        vec![msg("user", "a")],
        vec![msg("user", "b"), msg("assistant", "c")],
    ];
    let mut b = messages_batch(&convs).unwrap();
    // Drop `content` from the struct: rebuild the list with only `role`.
    let list = b
        .column(0)
        .as_any()
        .downcast_ref::<ListArray>()
        .unwrap()
        .clone();
    let (field, offsets, values, nulls) = list.into_parts();
    let s = values
        .as_any()
        .downcast_ref::<arrow::array::StructArray>()
        .unwrap();
    let role_only = arrow::array::StructArray::new(
        vec![arrow::datatypes::Field::new(
            "role",
            arrow::datatypes::DataType::Utf8,
            true,
        )]
        .into(),
        vec![s.column_by_name("role").unwrap().clone()],
        None,
    );
    let item = Arc::new(arrow::datatypes::Field::new(
        field.name(),
        role_only.data_type().clone(),
        true,
    ));
    let list: ArrayRef = Arc::new(ListArray::new(item, offsets, Arc::new(role_only), nulls));
    b = batch(vec![("messages", list)]);
    let e = err_text(read_dataset(
        &parquet_file(dir.path(), "m.parquet", &b),
        None,
    ));
    assert!(
        e.contains("m.parquet, row 0") && e.contains("messages[0]: `content` is missing"),
        "{e}"
    );
}

#[test]
fn truncated_and_corrupt_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let convs: Vec<Vec<Message>> = (0..200)
        .map(|i| vec![msg("user", &format!("question {i}"))])
        .collect();
    let path = parquet_file(dir.path(), "full.parquet", &messages_batch(&convs).unwrap());
    let bytes = std::fs::read(&path).unwrap();
    let cut = text_file(dir.path(), "cut.parquet", "");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = err_text(read_dataset(&cut, None));
    assert!(
        e.contains("cut.parquet") && e.contains("not a valid Parquet file"),
        "{e}"
    );
    let junk = text_file(dir.path(), "junk.parquet", "definitely not parquet");
    assert!(err_text(read_dataset(&junk, None)).contains("junk.parquet"));
    let e = err_text(read_dataset(
        &text_file(dir.path(), "x.arrow", "nope"),
        None,
    ));
    assert!(
        e.contains("x.arrow") && e.contains("not a valid Arrow IPC"),
        "{e}"
    );
}

#[test]
fn invalid_json_and_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let e = err_text(read_dataset(
        &text_file(dir.path(), "bad.json", "[{\"text\": \"a\"},"),
        None,
    ));
    assert!(e.contains("bad.json") && e.contains("invalid JSON"), "{e}");
    let e = err_text(read_dataset(
        &text_file(dir.path(), "rows.json", "[{\"text\": \"a\"}, 3]"),
        None,
    ));
    assert!(
        e.contains("rows.json, row 1") && e.contains("must be a JSON object"),
        "{e}"
    );
    let lines = "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\"\n";
    let e = err_text(read_dataset(&text_file(dir.path(), "d.jsonl", lines), None));
    assert!(
        e.contains("d.jsonl, line 3") && e.contains("invalid JSON"),
        "{e}"
    );
    let e = err_text(read_dataset(
        &text_file(dir.path(), "t.jsonl", "{\"text\": \"a\"}\n{\"text\": 5}\n"),
        None,
    ));
    assert!(
        e.contains("t.jsonl, row 1") && e.contains("must be a string"),
        "{e}"
    );
    let e = err_text(read_dataset(
        &text_file(dir.path(), "empty.json", "[]"),
        None,
    ));
    assert!(e.contains("empty.json") && e.contains("no rows"), "{e}");
}

#[test]
fn malformed_csv() {
    let dir = tempfile::tempdir().unwrap();
    let e = err_text(read_dataset(
        &text_file(dir.path(), "r.csv", "prompt,completion\na,b\nc\n"),
        None,
    ));
    assert!(
        e.contains("r.csv, row 1") && e.contains("invalid CSV"),
        "{e}"
    );
    let e = err_text(read_dataset(
        &text_file(dir.path(), "m.csv", "messages,id\n\"[]\",1\n"),
        None,
    ));
    assert!(
        e.contains("m.csv, row 0") && e.contains("must be a list"),
        "{e}"
    );
    let e = err_text(read_dataset(
        &text_file(dir.path(), "q.csv", "question,answer\na,b\n"),
        None,
    ));
    assert!(
        e.contains("q.csv") && e.contains("no usable columns"),
        "{e}"
    );
}
