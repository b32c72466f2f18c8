//! Which file is the dataset, and in which format, the way KAITO's `fine_tuning.py` decides.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The file formats a tuning dataset may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetFormat {
    /// Apache Parquet (`datasets`' `parquet` builder).
    Parquet,
    /// Arrow IPC, file or stream format (what `datasets.save_to_disk` writes).
    Arrow,
    /// A JSON document (array of objects, an object of columns, or an object whose only list is
    /// the rows); JSON Lines content in a `.json` file is accepted too, as `datasets` does.
    Json,
    /// JSON Lines: one object per line.
    JsonLines,
    /// CSV with a header row.
    Csv,
}

impl DatasetFormat {
    /// The format named by KAITO's `dataset_extension` (`parquet`, `arrow`, `json`, `jsonl`, `csv`).
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim_start_matches('.').to_ascii_lowercase().as_str() {
            "parquet" => Ok(Self::Parquet),
            "arrow" => Ok(Self::Arrow),
            "json" => Ok(Self::Json),
            "jsonl" | "jsonlines" | "ndjson" => Ok(Self::JsonLines),
            "csv" => Ok(Self::Csv),
            other => Err(Error::invalid(
                "DatasetConfig.dataset_extension",
                format!(
                    "unsupported dataset format {other:?}; expected parquet, arrow, json, jsonl or csv"
                ),
            )),
        }
    }

    /// The format a file name implies: its extension, else the first of `parquet`, `arrow`,
    /// `jsonl`, `json`, `csv` that the name contains (KAITO matches names by substring).
    pub fn from_path(path: &Path) -> Result<Self> {
        if let Some(ext) = path.extension().and_then(|e| e.to_str())
            && let Ok(format) = Self::parse(ext)
        {
            return Ok(format);
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        for (needle, format) in [
            ("parquet", Self::Parquet),
            ("arrow", Self::Arrow),
            ("jsonl", Self::JsonLines),
            ("json", Self::Json),
            ("csv", Self::Csv),
        ] {
            if name.contains(needle) {
                return Ok(format);
            }
        }
        Err(Error::invalid(
            path.display().to_string(),
            "cannot tell the dataset format from the file name; expected parquet, arrow, json, jsonl or csv",
        ))
    }
}

/// The substrings KAITO looks for in file names. `webdataset` is among them in KAITO, but it is
/// not a format this crate reads, so such a file is found and then rejected with a clear error
/// rather than silently skipped.
const NAME_MARKERS: [&str; 5] = ["csv", "json", "parquet", "arrow", "webdataset"];

/// The dataset file for a tuning job.
///
/// `dataset_path`, when given, is the file; a relative one is taken relative to `input_dir` (KAITO
/// resolves it against `/mnt`, so a caller mirroring that passes `/mnt` or an absolute path), and
/// a directory there is searched like `input_dir`. Otherwise `input_dir` is walked
/// top-down as Python's `os.walk` does — a directory's files before its subdirectories — in sorted
/// order, and the first file whose name contains `csv`, `json`, `parquet`, `arrow` (or
/// `webdataset`) is the dataset.
pub fn find_dataset_file(input_dir: &Path, dataset_path: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = dataset_path {
        let path = &input_dir.join(path);
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_file() {
            return Ok(path.to_path_buf());
        }
        return first_match(path)?.ok_or_else(|| no_dataset(path));
    }
    first_match(input_dir)?.ok_or_else(|| no_dataset(input_dir))
}

fn no_dataset(dir: &Path) -> Error {
    Error::invalid(
        dir.display().to_string(),
        "no dataset file found: expected a file whose name contains csv, json, parquet or arrow",
    )
}

fn first_match(dir: &Path) -> Result<Option<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        // As os.walk (followlinks=False): symlinked files count, symlinked directories are not
        // descended into (which also rules out cycles).
        let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if kind.is_dir() {
            dirs.push(path);
        } else if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push(path);
        }
    }
    files.sort();
    dirs.sort();
    if let Some(file) = files.into_iter().find(|f| {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        NAME_MARKERS.iter().any(|m| name.contains(m))
    }) {
        if file.to_string_lossy().contains("webdataset") && DatasetFormat::from_path(&file).is_err()
        {
            return Err(Error::invalid(
                file.display().to_string(),
                "webdataset files are not supported",
            ));
        }
        return Ok(Some(file));
    }
    for sub in dirs {
        if let Some(found) = first_match(&sub)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}
