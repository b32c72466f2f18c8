//! Host-side tensors by Hugging Face name, read from `*.safetensors` (single or sharded) and written
//! back (adapters, merged models).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors, View};

use crate::{Error, Result};

/// A dense f32 tensor on the host, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first (HF/PyTorch order).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor from its parts; the caller guarantees `data.len()` is the product of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { shape, data }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// Tensors by HF name, as loaded from a checkpoint.
pub type WeightMap = HashMap<String, HostTensor>;

/// Loads every tensor of the model in `dir`: `model.safetensors`, or the shards listed in
/// `model.safetensors.index.json`, converting bf16/f16 to f32.
pub fn load_safetensors_dir(dir: &Path) -> Result<WeightMap> {
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<std::path::PathBuf> = if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(index.display().to_string(), e.to_string()))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::invalid(index.display().to_string(), "no `weight_map` object"))?;
        let mut shards: Vec<String> = map
            .values()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        shards.sort();
        shards.dedup();
        shards.into_iter().map(|s| dir.join(s)).collect()
    } else {
        vec![dir.join("model.safetensors")]
    };
    let mut out = WeightMap::new();
    for f in files {
        out.extend(load_safetensors_file(&f)?);
    }
    Ok(out)
}

/// Loads every tensor of one `.safetensors` file as f32.
pub fn load_safetensors_file(path: &Path) -> Result<WeightMap> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let what = path.display().to_string();
    let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::invalid(&what, e.to_string()))?;
    let mut out = WeightMap::new();
    for (name, view) in st.iter() {
        let data = to_f32(view.dtype(), view.data())
            .map_err(|m| Error::invalid(&what, format!("tensor `{name}`: {m}")))?;
        out.insert(
            name.to_string(),
            HostTensor::new(view.shape().to_vec(), data),
        );
    }
    Ok(out)
}

fn to_f32(dtype: Dtype, bytes: &[u8]) -> std::result::Result<Vec<f32>, String> {
    let chunks = |n: usize| bytes.chunks_exact(n);
    Ok(match dtype {
        Dtype::F32 => chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => chunks(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => chunks(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(format!(
                "unsupported dtype {other:?} (expected F32, F16 or BF16)"
            ));
        }
    })
}

/// The dtype tensors are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveDtype {
    /// 32-bit float.
    F32,
    /// bfloat16.
    Bf16,
    /// float16.
    F16,
}

struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Writes `tensors` to `path` atomically (temp file in the same directory, then rename).
pub fn save_safetensors(
    path: &Path,
    tensors: &BTreeMap<String, HostTensor>,
    dtype: SaveDtype,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let encoded: Vec<(String, Bytes)> = tensors
        .iter()
        .map(|(name, t)| {
            let (dt, data) = match dtype {
                SaveDtype::F32 => (
                    Dtype::F32,
                    t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ),
                SaveDtype::Bf16 => (
                    Dtype::BF16,
                    t.data
                        .iter()
                        .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                        .collect(),
                ),
                SaveDtype::F16 => (
                    Dtype::F16,
                    t.data
                        .iter()
                        .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                        .collect(),
                ),
            };
            (
                name.clone(),
                Bytes {
                    dtype: dt,
                    shape: t.shape.clone(),
                    data,
                },
            )
        })
        .collect();
    let bytes = safetensors::serialize(encoded.iter().map(|(n, b)| (n.as_str(), b)), metadata)
        .map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to a temporary sibling of `path`, then renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let mut m = BTreeMap::new();
        m.insert(
            "a.weight".to_string(),
            HostTensor::new(vec![2, 2], vec![1.0, -2.5, 0.25, 3.0]),
        );
        save_safetensors(&path, &m, SaveDtype::Bf16, None).unwrap();
        let back = load_safetensors_dir(dir.path()).unwrap();
        assert_eq!(back["a.weight"], m["a.weight"]);
    }
}
