//! Tests of the data pipeline. Every fixture is generated here: files with the arrow/parquet
//! writers, and a word-level tokenizer built from JSON, so nothing is downloaded.

mod batch;
mod example_dataset;
mod formats;
mod malformed;
mod template;
mod tokenize;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use tokenizers::Tokenizer;

use super::{Message, write_parquet};

/// SmolLM2-135M-Instruct's chat template (ChatML), verbatim.
pub(super) const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Phi-3-mini-4k-instruct's chat template, verbatim.
pub(super) const PHI3: &str = "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

pub(super) const SPECIAL: [&str; 8] = [
    "[UNK]",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
];

const WORDS: &str = "system You are a helpful AI assistant named SmolLM , trained by Hugging Face user assistant \
    Hi Hello ! What is the codename ? It Blue Heron . Thanks welcome Q : A hello world answer blue sky";

/// A word-level tokenizer (whitespace/punctuation pre-tokenizer) knowing [`SPECIAL`] and a few
/// words; anything else is `[UNK]`.
pub(super) fn tokenizer() -> Tokenizer {
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (id, token) in SPECIAL.iter().enumerate() {
        vocab.insert((*token).into(), id.into());
        added.push(
            serde_json::json!({"id": id, "content": token, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true}),
        );
    }
    for word in WORDS.split_whitespace() {
        let id = vocab.len();
        vocab.entry(word.to_owned()).or_insert(id.into());
    }
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    json.to_string().parse().expect("fixture tokenizer")
}

/// The token strings of `ids`.
pub(super) fn tokens(tok: &Tokenizer, ids: impl IntoIterator<Item = u32>) -> Vec<String> {
    ids.into_iter()
        .map(|id| tok.id_to_token(id).unwrap_or_else(|| format!("#{id}")))
        .collect()
}

pub(super) fn msg(role: &str, content: &str) -> Message {
    Message::new(role, content)
}

pub(super) fn strings(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

pub(super) fn ints(values: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

/// A record batch from named columns.
pub(super) fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .expect("fixture batch")
}

/// Writes `batch` as `dir/name` (Parquet) and returns the path.
pub(super) fn parquet_file(dir: &Path, name: &str, batch: &RecordBatch) -> PathBuf {
    let path = dir.join(name);
    write_parquet(&path, batch).expect("write parquet");
    path
}

/// Writes `text` as `dir/name` and returns the path.
pub(super) fn text_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write fixture");
    path
}

/// The error text of `result`, which must be an error.
pub(super) fn err_text<T: std::fmt::Debug>(result: crate::Result<T>) -> String {
    result.expect_err("expected an error").to_string()
}
