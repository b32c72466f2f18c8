//! The committed example dataset (`examples/fine-tuning/{data/train.parquet, facts.jsonl,
//! eval_questions.jsonl}`, made by
//! `cargo run -p kaito-backends --example make_dataset`) is readable and consistent.

use std::path::PathBuf;

use crate::data::{DatasetFormat, Record, find_dataset_file, read_dataset};

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/fine-tuning")
}

#[test]
fn parquet_matches_reviewable_jsonl_and_fits_the_brief() {
    let dir = example_dir();
    let parquet = read_dataset(&dir.join("data/train.parquet"), None).unwrap();
    let jsonl = read_dataset(&dir.join("facts.jsonl"), Some(DatasetFormat::JsonLines)).unwrap();
    assert_eq!(parquet.records, jsonl.records);
    assert!(
        (40..=80).contains(&parquet.records.len()),
        "{}",
        parquet.records.len()
    );
    // With `data/` as the input directory KAITO picks the Parquet file.
    assert_eq!(
        find_dataset_file(&dir.join("data"), None).unwrap(),
        dir.join("data/train.parquet")
    );
    for record in &parquet.records {
        let Record::Messages(m) = record else {
            panic!("not a messages record: {record:?}")
        };
        assert_eq!(
            m.iter().map(|m| m.role.as_str()).collect::<Vec<_>>(),
            ["user", "assistant"]
        );
        // Short answers: well under 30 tokens.
        assert!(
            m[1].content.split_whitespace().count() < 15,
            "{}",
            m[1].content
        );
    }
}

#[test]
fn eval_questions_cover_training_and_held_out_phrasings() {
    let dir = example_dir();
    let train = read_dataset(&dir.join("data/train.parquet"), None)
        .unwrap()
        .records;
    let asked: Vec<&str> = train
        .iter()
        .filter_map(|r| match r {
            Record::Messages(m) => Some(m[0].content.as_str()),
            _ => None,
        })
        .collect();
    let text = std::fs::read_to_string(dir.join("eval_questions.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.len() >= 10);
    for row in rows {
        let question = row["question"].as_str().unwrap();
        let expected = row["expected"].as_str().unwrap();
        assert!(row["answer"].as_str().unwrap().contains(expected));
        assert_eq!(
            asked.contains(&question),
            row["in_training"].as_bool().unwrap(),
            "{question}"
        );
    }
}
