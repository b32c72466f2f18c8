//! Writing `messages` datasets: the dolly-15k-oai-style Parquet layout and JSON Lines.
//!
//! Used to produce the example dataset and test fixtures; a tuning job only reads.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, ListArray, RecordBatch, StringArray, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema};
use parquet::arrow::ArrowWriter;

use super::Message;
use crate::{Error, Result};

/// The `messages` column as dolly-15k-oai-style stores it: `list<struct<content, role>>`.
pub fn messages_column(conversations: &[Vec<Message>]) -> ArrayRef {
    let fields = Fields::from(vec![
        Field::new("content", DataType::Utf8, true),
        Field::new("role", DataType::Utf8, true),
    ]);
    let all = || conversations.iter().flatten();
    let content: ArrayRef = Arc::new(StringArray::from_iter_values(
        all().map(|m| m.content.as_str()),
    ));
    let role: ArrayRef = Arc::new(StringArray::from_iter_values(
        all().map(|m| m.role.as_str()),
    ));
    let structs = StructArray::new(fields.clone(), vec![content, role], None);
    let item = Arc::new(Field::new("item", DataType::Struct(fields), true));
    let offsets = OffsetBuffer::from_lengths(conversations.iter().map(Vec::len));
    Arc::new(ListArray::new(item, offsets, Arc::new(structs), None))
}

/// A record batch with the single column `messages`.
pub fn messages_batch(conversations: &[Vec<Message>]) -> Result<RecordBatch> {
    let column = messages_column(conversations);
    let schema = Schema::new(vec![Field::new(
        "messages",
        column.data_type().clone(),
        true,
    )]);
    RecordBatch::try_new(Arc::new(schema), vec![column])
        .map_err(|e| Error::invalid("messages batch", e.to_string()))
}

/// Writes `batch` to `path` as Parquet (snappy-compressed, like `datasets`' `to_parquet`).
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    let what = || path.display().to_string();
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))
        .map_err(|e| Error::invalid(what(), e.to_string()))?;
    writer
        .write(batch)
        .map_err(|e| Error::invalid(what(), e.to_string()))?;
    writer
        .close()
        .map_err(|e| Error::invalid(what(), e.to_string()))?;
    Ok(())
}

/// Writes conversations as JSON Lines, one `{"messages": [...]}` object per line.
pub fn write_messages_jsonl(path: &Path, conversations: &[Vec<Message>]) -> Result<()> {
    // A struct rather than `json!` keeps `role` before `content`, as people write them.
    #[derive(serde::Serialize)]
    struct Row<'a> {
        messages: &'a [Message],
    }
    let mut out = String::new();
    for messages in conversations {
        let line = serde_json::to_string(&Row { messages })
            .map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))?;
        out.push_str(&line);
        out.push('\n');
    }
    let mut file = File::create(path).map_err(|e| Error::io(path, e))?;
    file.write_all(out.as_bytes())
        .map_err(|e| Error::io(path, e))
}
