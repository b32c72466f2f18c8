//! Tokenizers: `tokenizer.json` (+ the chat template of `tokenizer_config.json`) from a model
//! directory, or rebuilt from GGUF metadata; chat templates rendered with minijinja.

use std::path::Path;

use serde_json::{Value, json};

use super::gguf::{GgufFile, MetaValue};
use crate::{Error, Result};

/// A tokenizer with the special ids and chat template the runtime needs.
#[derive(Clone)]
pub struct TokenizerBundle {
    /// The HF tokenizer.
    pub tokenizer: tokenizers::Tokenizer,
    /// Jinja chat template, when the model has one.
    pub chat_template: Option<String>,
    /// End-of-sequence id.
    pub eos_token_id: Option<u32>,
    /// Beginning-of-sequence id.
    pub bos_token_id: Option<u32>,
    /// Padding id (falls back to EOS, as KAITO's script does).
    pub pad_token_id: Option<u32>,
}

impl std::fmt::Debug for TokenizerBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenizerBundle")
            .field("vocab", &self.tokenizer.get_vocab_size(true))
            .field("eos_token_id", &self.eos_token_id)
            .finish()
    }
}

fn token_id(tok: &tokenizers::Tokenizer, v: Option<&Value>) -> Option<u32> {
    match v? {
        Value::String(s) => tok.token_to_id(s),
        Value::Object(o) => o
            .get("content")
            .and_then(|c| c.as_str())
            .and_then(|s| tok.token_to_id(s)),
        _ => None,
    }
}

impl TokenizerBundle {
    /// Loads `tokenizer.json` and, when present, `tokenizer_config.json` from `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let tokenizer = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: Value = match std::fs::read_to_string(&cfg_path) {
            Ok(t) => serde_json::from_str(&t)
                .map_err(|e| Error::invalid(cfg_path.display().to_string(), e.to_string()))?,
            Err(_) => Value::Null,
        };
        // transformers >= 5 saves the template next to the config as `chat_template.jinja`.
        let jinja = std::fs::read_to_string(dir.join("chat_template.jinja")).ok();
        let chat_template = match cfg.get("chat_template") {
            _ if jinja.is_some() => jinja,
            Some(Value::String(s)) => Some(s.clone()),
            // A list of named templates: use "default".
            Some(Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template").and_then(|s| s.as_str()).map(String::from)),
            _ => None,
        };
        let eos = token_id(&tokenizer, cfg.get("eos_token"));
        let bos = token_id(&tokenizer, cfg.get("bos_token"));
        let pad = token_id(&tokenizer, cfg.get("pad_token")).or(eos);
        Ok(Self {
            tokenizer,
            chat_template,
            eos_token_id: eos,
            bos_token_id: bos,
            pad_token_id: pad,
        })
    }

    /// Rebuilds the tokenizer from GGUF metadata (`tokenizer.ggml.*`, gpt2 byte-level BPE).
    pub fn from_gguf(gguf: &GgufFile, what: &str) -> Result<Self> {
        let m = &gguf.metadata;
        let model = m
            .get("tokenizer.ggml.model")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if model != "gpt2" {
            return Err(Error::invalid(
                what,
                format!(
                    "GGUF tokenizer model `{model}` is not supported (only gpt2 byte-level BPE)"
                ),
            ));
        }
        let strings = |key: &str| -> Result<Vec<String>> {
            m.get(key)
                .and_then(|v| v.as_array())
                .ok_or_else(|| Error::invalid(what, format!("GGUF metadata `{key}` is missing")))
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?;
        let types: Vec<i64> = m
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().map(|v| v.as_int().unwrap_or(1)).collect())
            .unwrap_or_default();
        let vocab: serde_json::Map<String, Value> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), json!(i)))
            .collect();
        // Control (3) and user-defined (4) tokens are added tokens; control ones are special.
        let added: Vec<Value> = types
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == 3 || **t == 4)
            .map(|(i, t)| {
                json!({"id": i, "content": tokens[i], "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": *t == 3})
            })
            .collect();
        let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
        let spec = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level]},
            "post_processor": byte_level,
            "decoder": byte_level,
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                      "ignore_merges": false, "vocab": vocab, "merges": merges}
        });
        let bytes = serde_json::to_vec(&spec).map_err(|e| Error::invalid(what, e.to_string()))?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| {
            Error::invalid(what, format!("building tokenizer from GGUF metadata: {e}"))
        })?;
        let id = |k: &str| m.get(k).and_then(MetaValue::as_int).map(|v| v as u32);
        let eos = id("tokenizer.ggml.eos_token_id");
        Ok(Self {
            tokenizer,
            chat_template: m
                .get("tokenizer.chat_template")
                .and_then(|v| v.as_str())
                .map(String::from),
            eos_token_id: eos,
            bos_token_id: id("tokenizer.ggml.bos_token_id"),
            pad_token_id: id("tokenizer.ggml.padding_token_id").or(eos),
        })
    }

    /// Token ids of `text` (no special tokens added: chat templates carry their own).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::invalid("tokenizer", e.to_string()))
    }

    /// Text of `ids`, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| Error::invalid("tokenizer", e.to_string()))
    }

    /// The token text of an id (used for EOS names in templates).
    fn token(&self, id: Option<u32>) -> String {
        id.and_then(|i| self.tokenizer.id_to_token(i))
            .unwrap_or_default()
    }

    /// Renders `messages` (`[{"role", "content"}, ...]`) with the chat template as Hugging Face's
    /// `apply_chat_template(..., tokenize=False)` does.
    pub fn apply_chat_template(
        &self,
        messages: &Value,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .chat_template
            .as_deref()
            .ok_or_else(|| Error::invalid("tokenizer", "the model has no chat template"))?;
        render_chat_template(
            template,
            messages,
            add_generation_prompt,
            &self.token(self.bos_token_id),
            &self.token(self.eos_token_id),
        )
    }
}

/// Renders a HF chat template with minijinja (`raise_exception` provided, Python string methods
/// via minijinja's pycompat-style fallbacks are not needed by the supported families).
pub fn render_chat_template(
    template: &str,
    messages: &Value,
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    let tmpl = env
        .template_from_str(template)
        .map_err(|e| Error::invalid("chat template", e.to_string()))?;
    tmpl.render(minijinja::context! {
        messages => messages,
        add_generation_prompt => add_generation_prompt,
        bos_token => bos_token,
        eos_token => eos_token,
    })
    .map_err(|e| Error::invalid("chat template", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_template_renders_like_transformers() {
        let t = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
        let msgs = json!([{"role": "user", "content": "Hi"}]);
        let out = render_chat_template(t, &msgs, true, "", "").unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
