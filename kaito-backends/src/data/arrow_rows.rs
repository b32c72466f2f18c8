//! Parquet and Arrow IPC datasets: the columns a shape needs, row by row, as JSON values.

use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Schema, *};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

use super::Record;
use super::records::{Shape, choose_shape, record_from_row, row_what};
use crate::{Error, Result};

fn is_string(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_string(values),
        _ => false,
    }
}

fn shape_of(path: &Path, schema: &Schema) -> Result<Shape> {
    let columns: Vec<(String, bool)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), is_string(f.data_type())))
        .collect();
    choose_shape(path, &columns)
}

/// A Parquet file (e.g. the dolly-15k-oai-style `messages: list<struct<role, content>>` layout).
pub(crate) fn read_parquet(path: &Path) -> Result<Vec<Record>> {
    let what = path.display().to_string();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::invalid(&what, format!("not a valid Parquet file: {e}")))?;
    let shape = shape_of(path, builder.schema())?;
    let indices: Vec<usize> = shape
        .columns()
        .iter()
        .filter_map(|c| builder.schema().fields().iter().position(|f| f.name() == c))
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| Error::invalid(&what, format!("cannot read Parquet data: {e}")))?;
    let mut records = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| {
            Error::invalid(
                row_what(path, records.len()),
                format!("corrupt Parquet data at or after this row: {e}"),
            )
        })?;
        push_batch(path, &shape, &batch, &mut records)?;
    }
    Ok(records)
}

/// An Arrow IPC file (`ARROW1` file format) or stream (what `datasets` writes as `*.arrow`).
pub(crate) fn read_arrow_ipc(path: &Path) -> Result<Vec<Record>> {
    use arrow::ipc::reader::{FileReader, StreamReader};
    let what = path.display().to_string();
    let open = || File::open(path).map_err(|e| Error::io(path, e));
    let batches: Box<dyn Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>>> =
        match FileReader::try_new(open()?, None) {
            Ok(reader) => Box::new(reader),
            Err(file_err) => match StreamReader::try_new(open()?, None) {
                Ok(reader) => Box::new(reader),
                Err(stream_err) => {
                    return Err(Error::invalid(
                        &what,
                        format!("not a valid Arrow IPC file ({file_err}) or stream ({stream_err})"),
                    ));
                }
            },
        };
    let mut records = Vec::new();
    let mut shape = None;
    for batch in batches {
        let batch = batch.map_err(|e| {
            Error::invalid(
                row_what(path, records.len()),
                format!("corrupt Arrow data at or after this row: {e}"),
            )
        })?;
        if shape.is_none() {
            shape = Some(shape_of(path, batch.schema_ref())?);
        }
        if let Some(shape) = &shape {
            push_batch(path, shape, &batch, &mut records)?;
        }
    }
    Ok(records)
}

fn push_batch(
    path: &Path,
    shape: &Shape,
    batch: &RecordBatch,
    records: &mut Vec<Record>,
) -> Result<()> {
    let mut columns = Vec::new();
    for name in shape.columns() {
        let column = match batch.column_by_name(name) {
            // Decode dictionaries once here rather than per row in `value_at`.
            Some(c) => match c.data_type() {
                DataType::Dictionary(_, values) => {
                    Some(arrow::compute::cast(c, values).map_err(|e| {
                        Error::invalid(path.display().to_string(), format!("column `{name}`: {e}"))
                    })?)
                }
                _ => Some(c.clone()),
            },
            None => None,
        };
        columns.push((name, column));
    }
    for i in 0..batch.num_rows() {
        let index = records.len();
        let mut row = Map::new();
        for (name, column) in &columns {
            if let Some(column) = column {
                let value = value_at(column.as_ref(), i).map_err(|e| {
                    Error::invalid(row_what(path, index), format!("column `{name}`: {e}"))
                })?;
                row.insert((*name).to_owned(), value);
            }
        }
        records.push(record_from_row(path, index, shape, &row)?);
    }
    Ok(())
}

/// Element `i` of `array` as JSON; types a dataset column can sensibly hold, else an error.
fn value_at(array: &dyn Array, i: usize) -> Result<Value, String> {
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    let list = |values: &dyn Array| -> Result<Value, String> {
        (0..values.len())
            .map(|j| value_at(values, j))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
    };
    Ok(match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(i).to_owned()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(i).to_owned()),
        DataType::Utf8View => Value::String(array.as_string_view().value(i).to_owned()),
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(i).into(),
        DataType::Float32 => f64::from(array.as_primitive::<Float32Type>().value(i)).into(),
        DataType::Float64 => array.as_primitive::<Float64Type>().value(i).into(),
        DataType::List(_) => list(array.as_list::<i32>().value(i).as_ref())?,
        DataType::LargeList(_) => list(array.as_list::<i64>().value(i).as_ref())?,
        DataType::FixedSizeList(_, _) => list(array.as_fixed_size_list().value(i).as_ref())?,
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut map = Map::new();
            for (field, column) in fields.iter().zip(s.columns()) {
                map.insert(field.name().clone(), value_at(column.as_ref(), i)?);
            }
            Value::Object(map)
        }
        DataType::Dictionary(_, _) => {
            let dict = array.as_any_dictionary();
            let key = dict.normalized_keys()[i];
            value_at(dict.values().as_ref(), key)?
        }
        other => return Err(format!("unsupported Arrow type {other}")),
    })
}
