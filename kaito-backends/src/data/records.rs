//! Rows (as JSON objects, whatever the file format) into [`Record`]s of one shape.
//!
//! The shape is chosen from the column names, as TRL's `SFTTrainer` does: a `messages` column,
//! else `prompt` and `completion`, else `text`, else the only string column.

use std::path::Path;

use serde_json::{Map, Value};

use super::{Message, Record};
use crate::{Error, Result};

/// The columns a dataset is read through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Messages,
    PromptCompletion,
    /// A text column, by name.
    Text(String),
}

impl Shape {
    /// The column names this shape reads.
    pub(crate) fn columns(&self) -> Vec<&str> {
        match self {
            Shape::Messages => vec!["messages"],
            Shape::PromptCompletion => vec!["prompt", "completion"],
            Shape::Text(name) => vec![name.as_str()],
        }
    }
}

/// Chooses the shape from `columns`: each column's name and whether it holds strings.
pub(crate) fn choose_shape(file: &Path, columns: &[(String, bool)]) -> Result<Shape> {
    let has = |name: &str| columns.iter().any(|(n, _)| n == name);
    if has("messages") {
        return Ok(Shape::Messages);
    }
    if has("prompt") && has("completion") {
        return Ok(Shape::PromptCompletion);
    }
    if has("text") {
        return Ok(Shape::Text("text".to_owned()));
    }
    if let [(name, true)] = columns {
        return Ok(Shape::Text(name.clone()));
    }
    let found: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let hint = if has("prompt") {
        "; a `prompt` column needs a `completion` column"
    } else if has("completion") {
        "; a `completion` column needs a `prompt` column"
    } else {
        ""
    };
    Err(Error::invalid(
        file.display().to_string(),
        format!(
            "no usable columns {found:?}: expected `messages` (list of {{role, content}}), \
             `prompt` and `completion`, `text`, or a single string column{hint}"
        ),
    ))
}

/// Where a row sits, for error messages.
pub(crate) fn row_what(file: &Path, row: usize) -> String {
    format!("{}, row {row}", file.display())
}

/// The record in `row` (number `index`, from 0) of `file`, read through `shape`.
pub(crate) fn record_from_row(
    file: &Path,
    index: usize,
    shape: &Shape,
    row: &Map<String, Value>,
) -> Result<Record> {
    let bad = |message: String| Error::invalid(row_what(file, index), message);
    let string = |column: &str| -> Result<String> {
        match row.get(column) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Err(bad(format!("column `{column}` is missing or null"))),
            Some(other) => Err(bad(format!(
                "column `{column}` must be a string, found {}",
                kind(other)
            ))),
        }
    };
    match shape {
        Shape::Text(column) => Ok(Record::Text(string(column)?)),
        Shape::PromptCompletion => Ok(Record::PromptCompletion {
            prompt: string("prompt")?,
            completion: string("completion")?,
        }),
        Shape::Messages => {
            let list = match row.get("messages") {
                Some(Value::Array(list)) => list,
                None | Some(Value::Null) => {
                    return Err(bad("column `messages` is missing or null".into()));
                }
                Some(other) => {
                    return Err(bad(format!(
                        "column `messages` must be a list of {{role, content}} objects, found {}",
                        kind(other)
                    )));
                }
            };
            if list.is_empty() {
                return Err(bad("column `messages` is an empty list".into()));
            }
            let messages = list
                .iter()
                .enumerate()
                .map(|(i, m)| message(m).map_err(|e| bad(format!("messages[{i}]: {e}"))))
                .collect::<Result<Vec<_>>>()?;
            Ok(Record::Messages(messages))
        }
    }
}

fn message(value: &Value) -> Result<Message, String> {
    let Value::Object(map) = value else {
        return Err(format!(
            "must be an object with `role` and `content`, found {}",
            kind(value)
        ));
    };
    let field = |name: &str| match map.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(format!("`{name}` is missing or null")),
        Some(other) => Err(format!("`{name}` must be a string, found {}", kind(other))),
    };
    Ok(Message {
        role: field("role")?,
        content: field("content")?,
    })
}

/// A JSON value's type, in words.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Records from JSON-object rows (JSON, JSON Lines, CSV). The columns are those of the first row
/// (`datasets` infers its schema from the data; a later row missing a column is an error here).
pub(crate) fn records_from_rows(file: &Path, rows: &[Map<String, Value>]) -> Result<Vec<Record>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns: Vec<(String, bool)> = first
        .iter()
        .map(|(k, v)| (k.clone(), v.is_string()))
        .collect();
    let shape = choose_shape(file, &columns)?;
    rows.iter()
        .enumerate()
        .map(|(i, row)| record_from_row(file, i, &shape, row))
        .collect()
}
