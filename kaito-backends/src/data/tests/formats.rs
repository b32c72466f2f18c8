//! Each format and shape read correctly, and the dataset file found as KAITO finds it.

use std::fs::File;
use std::sync::Arc;

use arrow::array::LargeStringArray;

use super::*;
use crate::data::{DatasetFormat, Record, find_dataset_file, messages_batch, read_dataset};

fn conversations() -> Vec<Vec<Message>> {
    vec![
        vec![
            msg("user", "What is the codename?"),
            msg("assistant", "Blue Heron."),
        ],
        vec![
            msg("system", "Be brief."),
            msg("user", "Hi"),
            msg("assistant", "Hello!"),
        ],
    ]
}

#[test]
fn parquet_messages_in_dolly_oai_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = parquet_file(
        dir.path(),
        "train.parquet",
        &messages_batch(&conversations()).unwrap(),
    );
    let data = read_dataset(&path, None).unwrap();
    let expected: Vec<Record> = conversations().into_iter().map(Record::Messages).collect();
    assert_eq!(data.records, expected);
    assert_eq!(data.source, path);
}

#[test]
fn parquet_prompt_completion_ignores_other_columns() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch(vec![
        ("id", ints(&[1, 2])),
        ("prompt", strings(&["Q: sky", "Q: grass"])),
        ("completion", strings(&[" blue", " green"])),
    ]);
    let data = read_dataset(&parquet_file(dir.path(), "pc.parquet", &b), None).unwrap();
    assert_eq!(
        data.records[1],
        Record::PromptCompletion {
            prompt: "Q: grass".into(),
            completion: " green".into()
        }
    );
}

#[test]
fn parquet_text_column_and_single_string_column() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch(vec![("n", ints(&[7])), ("text", strings(&["hello world"]))]);
    let data = read_dataset(&parquet_file(dir.path(), "t.parquet", &b), None).unwrap();
    assert_eq!(data.records, vec![Record::Text("hello world".into())]);
    // A single string column of another name is the text, whatever its string type.
    let large: ArrayRef = Arc::new(LargeStringArray::from(vec!["a", "b"]));
    let data = read_dataset(
        &parquet_file(dir.path(), "body.parquet", &batch(vec![("body", large)])),
        None,
    )
    .unwrap();
    assert_eq!(
        data.records,
        vec![Record::Text("a".into()), Record::Text("b".into())]
    );
}

#[test]
fn arrow_ipc_file_and_stream() {
    use arrow::ipc::writer::{FileWriter, StreamWriter};
    let dir = tempfile::tempdir().unwrap();
    let b = messages_batch(&conversations()).unwrap();
    let file_path = dir.path().join("data-00000-of-00001.arrow");
    let mut w = FileWriter::try_new(File::create(&file_path).unwrap(), &b.schema()).unwrap();
    w.write(&b).unwrap();
    w.finish().unwrap();
    let stream_path = dir.path().join("stream.arrow");
    let mut w = StreamWriter::try_new(File::create(&stream_path).unwrap(), &b.schema()).unwrap();
    w.write(&b).unwrap();
    w.write(&b).unwrap();
    w.finish().unwrap();
    assert_eq!(read_dataset(&file_path, None).unwrap().records.len(), 2);
    let stream = read_dataset(&stream_path, None).unwrap().records;
    assert_eq!(stream.len(), 4);
    assert_eq!(stream[3], Record::Messages(conversations()[1].clone()));
}

#[test]
fn json_array_lines_and_field_wrapper() {
    let dir = tempfile::tempdir().unwrap();
    let rows = r#"[{"prompt": "Q", "completion": "A"}, {"prompt": "Q2", "completion": "A2"}]"#;
    let array = read_dataset(&text_file(dir.path(), "a.json", rows), None).unwrap();
    assert_eq!(
        array.records[1],
        Record::PromptCompletion {
            prompt: "Q2".into(),
            completion: "A2".into()
        }
    );
    let wrapped = format!(r#"{{"data": {rows}}}"#);
    assert_eq!(
        read_dataset(&text_file(dir.path(), "w.json", &wrapped), None)
            .unwrap()
            .records,
        array.records
    );
    // JSON Lines content in a .json file, as `datasets` accepts.
    let lines = "{\"text\": \"one\"}\n{\"text\": \"two\"}\n";
    let data = read_dataset(&text_file(dir.path(), "l.json", lines), None).unwrap();
    assert_eq!(
        data.records,
        vec![Record::Text("one".into()), Record::Text("two".into())]
    );
    // A single conversation object is one row, not a list of rows.
    let one = r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}"#;
    let data = read_dataset(&text_file(dir.path(), "one.json", one), None).unwrap();
    assert_eq!(
        data.records,
        vec![Record::Messages(vec![
            msg("user", "Hi"),
            msg("assistant", "Hello!")
        ])]
    );
}

#[test]
fn json_lines_skip_blank_lines() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n\n{\"messages\": [{\"content\": \"x\", \"role\": \"user\"}]}\n";
    let data = read_dataset(&text_file(dir.path(), "d.jsonl", text), None).unwrap();
    assert_eq!(data.records[1], Record::Messages(vec![msg("user", "x")]));
}

#[test]
fn csv_prompt_completion_with_quoted_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let text = "prompt,completion\n\"Q: a, b\nc\",\" yes\"\nQ2,A2\n";
    let data = read_dataset(&text_file(dir.path(), "d.csv", text), None).unwrap();
    assert_eq!(
        data.records,
        vec![
            Record::PromptCompletion {
                prompt: "Q: a, b\nc".into(),
                completion: " yes".into()
            },
            Record::PromptCompletion {
                prompt: "Q2".into(),
                completion: "A2".into()
            },
        ]
    );
}

#[test]
fn format_from_name_and_extension_option() {
    let fmt = |p: &str| DatasetFormat::from_path(std::path::Path::new(p)).unwrap();
    assert_eq!(fmt("x/train.parquet"), DatasetFormat::Parquet);
    assert_eq!(fmt("d.JSONL"), DatasetFormat::JsonLines);
    assert_eq!(fmt("my-csv-export.txt"), DatasetFormat::Csv);
    assert_eq!(fmt("data-00000-of-00001.arrow"), DatasetFormat::Arrow);
    assert_eq!(DatasetFormat::parse("json").unwrap(), DatasetFormat::Json);
    assert!(err_text(DatasetFormat::parse("xml")).contains("dataset_extension"));
    assert!(
        err_text(DatasetFormat::from_path(std::path::Path::new("notes.txt"))).contains("notes.txt")
    );
}

#[test]
fn finds_first_matching_file_walking_sorted_top_down() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("a/deeper")).unwrap();
    std::fs::create_dir_all(root.join("b")).unwrap();
    text_file(root, "README.md", "x");
    text_file(&root.join("a/deeper"), "0.json", "[]");
    text_file(&root.join("a"), "z.csv", "text\nx\n");
    text_file(&root.join("a"), "m.parquet", "");
    text_file(&root.join("b"), "a.json", "[]");
    // Files of a directory come before its subdirectories, each in sorted order.
    assert_eq!(
        find_dataset_file(root, None).unwrap(),
        root.join("a/m.parquet")
    );
    // dataset_path wins, file or directory.
    let chosen = root.join("b/a.json");
    assert_eq!(find_dataset_file(root, Some(&chosen)).unwrap(), chosen);
    assert_eq!(
        find_dataset_file(root, Some(&root.join("a/deeper"))).unwrap(),
        root.join("a/deeper/0.json")
    );
    // A relative dataset_path is relative to the input directory.
    let relative = std::path::Path::new("b/a.json");
    assert_eq!(find_dataset_file(root, Some(relative)).unwrap(), chosen);
    let missing = err_text(find_dataset_file(root, Some(&root.join("nope.json"))));
    assert!(missing.contains("nope.json"), "{missing}");
    let empty = tempfile::tempdir().unwrap();
    text_file(empty.path(), "notes.txt", "x");
    assert!(err_text(find_dataset_file(empty.path(), None)).contains("no dataset file"));
}

#[cfg(unix)]
#[test]
fn symlinked_directories_are_not_descended() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    text_file(other.path(), "data.json", "[]");
    std::os::unix::fs::symlink(other.path(), dir.path().join("link")).unwrap();
    assert!(find_dataset_file(dir.path(), None).is_err());
    // A symlinked file counts (Kubernetes mounts are symlinks).
    std::os::unix::fs::symlink(other.path().join("data.json"), dir.path().join("d.json")).unwrap();
    assert_eq!(
        find_dataset_file(dir.path(), None).unwrap(),
        dir.path().join("d.json")
    );
}
