//! JSON, JSON Lines and CSV datasets.

use std::path::Path;

use serde_json::{Map, Value};

use super::Record;
use super::records::{kind, records_from_rows};
use crate::{Error, Result};

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        Error::invalid(
            path.display().to_string(),
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// A JSON file as `datasets`' `json` builder reads it: a top-level array of row objects, or one
/// or more whitespace-separated objects (JSON Lines content, or a single row). As a convenience a
/// file holding one object whose only member is a list of row objects (`{"data": [...]}`, what
/// `datasets` reads with `field="data"`) is unwrapped, unless that member is a dataset column.
pub(crate) fn read_json(path: &Path) -> Result<Vec<Record>> {
    let text = read_text(path)?;
    let what = path.display().to_string();
    let mut values = Vec::new();
    for value in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
        values.push(value.map_err(|e| Error::invalid(&what, format!("invalid JSON: {e}")))?);
    }
    let values = match values.as_slice() {
        [Value::Array(rows)] => rows.clone(),
        [Value::Object(obj)] => match unwrap_field(obj) {
            Some(rows) => rows.clone(),
            None => values,
        },
        _ => values,
    };
    let rows = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(map) => Ok(map),
            other => Err(Error::invalid(
                format!("{what}, row {i}"),
                format!("each row must be a JSON object, found {}", kind(&other)),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    records_from_rows(path, &rows)
}

fn unwrap_field(obj: &Map<String, Value>) -> Option<&Vec<Value>> {
    if obj.len() != 1 {
        return None;
    }
    let (key, Value::Array(rows)) = obj.iter().next()? else {
        return None;
    };
    let is_column = ["messages", "prompt", "completion", "text"].contains(&key.as_str());
    (!is_column && !rows.is_empty() && rows.iter().all(Value::is_object)).then_some(rows)
}

/// JSON Lines: one object per non-blank line. Errors name the line (from 1).
pub(crate) fn read_json_lines(path: &Path) -> Result<Vec<Record>> {
    let text = read_text(path)?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let what = || format!("{}, line {}", path.display(), n + 1);
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(map)) => rows.push(map),
            Ok(other) => {
                return Err(Error::invalid(
                    what(),
                    format!("each line must be a JSON object, found {}", kind(&other)),
                ));
            }
            Err(e) => return Err(Error::invalid(what(), format!("invalid JSON: {e}"))),
        }
    }
    records_from_rows(path, &rows)
}

/// CSV with a header row; every cell is a string, so only `prompt`/`completion` and text columns
/// can be read from CSV (a `messages` column is reported as having the wrong type).
pub(crate) fn read_csv(path: &Path) -> Result<Vec<Record>> {
    let what = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|e| Error::invalid(&what, format!("cannot read CSV: {e}")))?;
    let headers = reader
        .headers()
        .map_err(|e| Error::invalid(&what, format!("invalid CSV header: {e}")))?
        .clone();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record
            .map_err(|e| Error::invalid(format!("{what}, row {i}"), format!("invalid CSV: {e}")))?;
        let row: Map<String, Value> = headers
            .iter()
            .zip(record.iter())
            .map(|(h, v)| (h.to_owned(), Value::String(v.to_owned())))
            .collect();
        rows.push(row);
    }
    records_from_rows(path, &rows)
}
