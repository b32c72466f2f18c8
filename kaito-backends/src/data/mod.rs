//! Tuning datasets: from the files KAITO accepts to batches of token ids.
//!
//! The pipeline, in the order a training loop calls it:
//! 1. [`find_dataset_file`]: the file KAITO would pick (`dataset_path`, else the first matching
//!    file under the input directory).
//! 2. [`read_dataset`]: Parquet, Arrow IPC, JSON, JSON Lines or CSV into [`Record`]s of one of the
//!    three shapes TRL's `SFTTrainer` accepts (chosen from the column names, as TRL does).
//! 3. [`shuffle_and_split`]: deterministic shuffle and train/eval split (`DatasetConfig`).
//! 4. [`ExampleTokenizer`]: records into [`TokenizedExample`]s, with `messages` rendered by the
//!    model's [`ChatTemplate`] and labels masked to `-100` outside completions.
//! 5. [`pack`] (optional) and [`batches`]: fixed-length or right-padded [`Batch`]es.
//!
//! Loss masking follows TRL: only the completion is trained for `prompt`/`completion` data
//! (`completion_only_loss`), only assistant turns for `messages` data (`assistant_only_loss`; KAITO
//! leaves TRL's default there, which trains every token, but the project trains completions only),
//! and every token of a plain text column (language modelling).

mod arrow_rows;
mod batch;
mod discover;
mod pyjson;
mod records;
mod template;
mod text_formats;
mod tokenize;
mod write;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Result;

pub use batch::{Batch, batches, pack, shuffle_and_split};
pub use discover::{DatasetFormat, find_dataset_file};
pub use template::{ChatTemplate, resolve_template_option};
pub use tokenize::{ExampleTokenizer, IGNORE_INDEX, TokenizedExample};
pub use write::{messages_batch, messages_column, write_messages_jsonl, write_parquet};

/// One chat message of a `messages` record (OpenAI style).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, or whatever role the chat template understands.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl Message {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// One training record, in one of the shapes TRL's `SFTTrainer` accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A conversation (`messages` column); the loss covers assistant turns only.
    Messages(Vec<Message>),
    /// A prompt and its completion; the loss covers the completion only.
    PromptCompletion {
        /// The prompt text.
        prompt: String,
        /// The completion text.
        completion: String,
    },
    /// Plain text (a `text` column, or the only string column); the loss covers every token.
    Text(String),
}

/// A dataset file read into records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// The file the records came from.
    pub source: PathBuf,
    /// The records, in file order.
    pub records: Vec<Record>,
}

/// Reads `path` as `format` (or the format its name implies, see [`DatasetFormat::from_path`]).
///
/// Errors name the file and, where the reader knows it, the row (counted from 0, as `datasets`
/// indexes rows) or the line (counted from 1).
pub fn read_dataset(path: &Path, format: Option<DatasetFormat>) -> Result<Dataset> {
    let format = match format {
        Some(f) => f,
        None => DatasetFormat::from_path(path)?,
    };
    let records = match format {
        DatasetFormat::Parquet => arrow_rows::read_parquet(path)?,
        DatasetFormat::Arrow => arrow_rows::read_arrow_ipc(path)?,
        DatasetFormat::Json => text_formats::read_json(path)?,
        DatasetFormat::JsonLines => text_formats::read_json_lines(path)?,
        DatasetFormat::Csv => text_formats::read_csv(path)?,
    };
    if records.is_empty() {
        return Err(crate::Error::invalid(
            path.display().to_string(),
            "the dataset has no rows",
        ));
    }
    Ok(Dataset {
        source: path.to_path_buf(),
        records,
    })
}
