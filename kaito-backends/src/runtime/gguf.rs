//! GGUF checkpoints (llama.cpp's format): metadata, tensors dequantized to f32 under their Hugging
//! Face names, and the architecture config.
//!
//! A compact reader rather than a crate: the well-kept GGUF reader on crates.io is candle-core's
//! `quantized::gguf_file`, which brings the whole candle tensor library (and gemm) into a build that
//! already compiles Burn; the format itself is a small header plus aligned tensor blobs.

use std::collections::HashMap;
use std::path::Path;

use super::config::{Family, ModelConfig, RopeScaling};
use super::gguf_blocks::dequantize;
use super::weights::{HostTensor, WeightMap};
use crate::{Error, Result};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// Any integer type.
    Int(i64),
    /// f32/f64.
    Float(f64),
    /// bool.
    Bool(bool),
    /// UTF-8 string.
    Str(String),
    /// Array of values.
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// The integer value, if this is an integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            MetaValue::Int(v) => Some(*v),
            _ => None,
        }
    }
    /// The float value (integers convert).
    pub fn as_float(&self) -> Option<f64> {
        match self {
            MetaValue::Float(v) => Some(*v),
            MetaValue::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
    /// The string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The array value.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

struct TensorInfo {
    dims: Vec<usize>,
    ggml_type: u32,
    offset: usize,
}

/// An opened GGUF file (read into memory).
pub struct GgufFile {
    what: String,
    bytes: Vec<u8>,
    data_start: usize,
    /// Key/value metadata.
    pub metadata: HashMap<String, MetaValue>,
    tensors: Vec<(String, TensorInfo)>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or("truncated file")?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| "bad u32")?,
        ))
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| "bad u64")?,
        ))
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let n = self.u64()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn value(&mut self, ty: u32) -> std::result::Result<MetaValue, String> {
        let b = |r: &mut Self, n| r.take(n).map(|s| s.to_vec());
        Ok(match ty {
            0 => MetaValue::Int(b(self, 1)?[0] as i64),
            1 => MetaValue::Int(b(self, 1)?[0] as i8 as i64),
            2 => {
                let s = self.take(2)?;
                MetaValue::Int(u16::from_le_bytes([s[0], s[1]]) as i64)
            }
            3 => {
                let s = self.take(2)?;
                MetaValue::Int(i16::from_le_bytes([s[0], s[1]]) as i64)
            }
            4 => MetaValue::Int(self.u32()? as i64),
            5 => MetaValue::Int(self.u32()? as i32 as i64),
            6 => MetaValue::Float(f32::from_bits(self.u32()?) as f64),
            7 => MetaValue::Bool(self.take(1)?[0] != 0),
            8 => MetaValue::Str(self.string()?),
            9 => {
                let inner = self.u32()?;
                let n = self.u64()? as usize;
                if n > self.bytes.len() {
                    return Err("array length exceeds file size".into());
                }
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.value(inner)?);
                }
                MetaValue::Array(v)
            }
            10 => MetaValue::Int(self.u64()? as i64),
            11 => MetaValue::Int(self.u64()? as i64),
            12 => MetaValue::Float(f64::from_bits(self.u64()?)),
            other => return Err(format!("unknown metadata type {other}")),
        })
    }
}

impl GgufFile {
    /// Reads and parses `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let what = path.display().to_string();
        Self::parse(bytes, what)
    }

    fn parse(bytes: Vec<u8>, what: String) -> Result<Self> {
        let err = |m: String| Error::invalid(&what, format!("GGUF: {m}"));
        let mut r = Reader {
            bytes: &bytes,
            pos: 0,
        };
        if r.take(4).map_err(&err)? != b"GGUF" {
            return Err(err("not a GGUF file (bad magic)".into()));
        }
        let version = r.u32().map_err(&err)?;
        if !(2..=3).contains(&version) {
            return Err(err(format!("unsupported GGUF version {version}")));
        }
        let n_tensors = r.u64().map_err(&err)? as usize;
        let n_kv = r.u64().map_err(&err)? as usize;
        let mut metadata = HashMap::new();
        for _ in 0..n_kv {
            let key = r.string().map_err(&err)?;
            let ty = r.u32().map_err(&err)?;
            let v = r.value(ty).map_err(|m| err(format!("key `{key}`: {m}")))?;
            metadata.insert(key, v);
        }
        let mut tensors = Vec::with_capacity(n_tensors.min(1 << 16));
        for _ in 0..n_tensors {
            let name = r.string().map_err(&err)?;
            let nd = r.u32().map_err(&err)? as usize;
            let mut dims = Vec::with_capacity(nd);
            for _ in 0..nd {
                dims.push(r.u64().map_err(&err)? as usize);
            }
            let ggml_type = r.u32().map_err(&err)?;
            let offset = r.u64().map_err(&err)? as usize;
            tensors.push((
                name,
                TensorInfo {
                    dims,
                    ggml_type,
                    offset,
                },
            ));
        }
        let align = metadata
            .get("general.alignment")
            .and_then(|v| v.as_int())
            .unwrap_or(32) as usize;
        let data_start = r.pos.div_ceil(align.max(1)) * align.max(1);
        Ok(Self {
            what,
            bytes,
            data_start,
            metadata,
            tensors,
        })
    }

    fn meta_int(&self, key: &str) -> Result<usize> {
        self.metadata
            .get(key)
            .and_then(|v| v.as_int())
            .map(|v| v as usize)
            .ok_or_else(|| Error::invalid(&self.what, format!("GGUF metadata `{key}` is missing")))
    }

    /// The architecture config from `general.architecture` and its `<arch>.*` keys.
    pub fn model_config(&self) -> Result<ModelConfig> {
        let arch = self
            .metadata
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let family = match arch {
            "llama" => Family::Llama,
            "qwen2" => Family::Qwen2,
            other => {
                return Err(Error::invalid(
                    &self.what,
                    format!("unsupported GGUF architecture `{other}` (supported: llama, qwen2)"),
                ));
            }
        };
        let k = |s: &str| format!("{arch}.{s}");
        let hidden = self.meta_int(&k("embedding_length"))?;
        let heads = self.meta_int(&k("attention.head_count"))?;
        let kv_heads = self
            .meta_int(&k("attention.head_count_kv"))
            .unwrap_or(heads);
        let vocab = match self.meta_int(&k("vocab_size")) {
            Ok(v) => v,
            Err(_) => self
                .metadata
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.as_array())
                .map(|a| a.len())
                .ok_or_else(|| Error::invalid(&self.what, "GGUF has no vocabulary size"))?,
        };
        let head_dim = hidden / heads.max(1);
        let tied = !self.tensors.iter().any(|(n, _)| n == "output.weight");
        let eos = self
            .meta_int("tokenizer.ggml.eos_token_id")
            .ok()
            .map(|v| v as u32);
        Ok(ModelConfig {
            family,
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: self.meta_int(&k("feed_forward_length"))?,
            num_layers: self.meta_int(&k("block_count"))?,
            num_heads: heads,
            num_kv_heads: kv_heads,
            head_dim,
            rotary_dim: head_dim,
            rms_norm_eps: self
                .metadata
                .get(&k("attention.layer_norm_rms_epsilon"))
                .and_then(|v| v.as_float())
                .unwrap_or(1e-5),
            rope_theta: self
                .metadata
                .get(&k("rope.freq_base"))
                .and_then(|v| v.as_float())
                .unwrap_or(10_000.0),
            rope_scaling: RopeScaling::None,
            max_position_embeddings: self.meta_int(&k("context_length")).unwrap_or(2048),
            tie_word_embeddings: tied,
            qkv_bias: family == Family::Qwen2,
            o_bias: false,
            mlp_bias: false,
            eos_token_ids: eos.into_iter().collect(),
            bos_token_id: self
                .meta_int("tokenizer.ggml.bos_token_id")
                .ok()
                .map(|v| v as u32),
        })
    }

    /// Every tensor dequantized to f32 under its Hugging Face name, q/k rows un-permuted from
    /// GGUF's interleaved-RoPE order back to HF's rotate-half order.
    pub fn weights(&self, cfg: &ModelConfig) -> Result<WeightMap> {
        let mut out = WeightMap::new();
        for (name, info) in &self.tensors {
            let Some(hf) = hf_name(name) else {
                // rope_freqs and similar derived tensors are recomputed from the config.
                continue;
            };
            let numel: usize = info.dims.iter().product();
            let start = self.data_start + info.offset;
            let blob = self.bytes.get(start..).unwrap_or(&[]);
            let data = dequantize(info.ggml_type, blob, numel)
                .map_err(|m| Error::invalid(&self.what, format!("tensor `{name}`: {m}")))?;
            // GGUF lists dimensions innermost first.
            let shape: Vec<usize> = info.dims.iter().rev().copied().collect();
            let mut t = HostTensor::new(shape, data);
            if name.ends_with("attn_q.weight") || name.ends_with("attn_q.bias") {
                unpermute_rows(&mut t, cfg.num_heads);
            } else if name.ends_with("attn_k.weight") || name.ends_with("attn_k.bias") {
                unpermute_rows(&mut t, cfg.num_kv_heads);
            }
            out.insert(hf, t);
        }
        Ok(out)
    }
}

fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, tail) = rest.split_once('.')?;
    let (module, kind) = tail.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Inverse of llama.cpp's `permute`: GGUF row `h*hd + 2j + s` holds HF row `h*hd + s*hd/2 + j`.
fn unpermute_rows(t: &mut HostTensor, heads: usize) {
    let rows = t.shape[0];
    let cols = if t.shape.len() > 1 { t.shape[1] } else { 1 };
    let hd = rows / heads.max(1);
    let half = hd / 2;
    let src = t.data.clone();
    for h in 0..heads {
        for s in 0..2 {
            for j in 0..half {
                let from = h * hd + 2 * j + s;
                let to = h * hd + s * half + j;
                t.data[to * cols..(to + 1) * cols]
                    .copy_from_slice(&src[from * cols..(from + 1) * cols]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // 1 head, head_dim 4, 1 column: HF rows [a0 a1 b0 b1] are stored interleaved [a0 b0 a1 b1].
        let mut t = HostTensor::new(vec![4, 1], vec![0.0, 2.0, 1.0, 3.0]);
        unpermute_rows(&mut t, 1);
        assert_eq!(t.data, vec![0.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn bad_magic_is_an_error() {
        let err = GgufFile::parse(b"NOPE0000".to_vec(), "f.gguf".into())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("bad magic"), "{err}");
    }
}
