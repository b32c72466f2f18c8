//! Chat templates rendered as Hugging Face's `apply_chat_template` renders them.
//!
//! transformers compiles the template in a sandboxed Jinja2 environment with `trim_blocks`,
//! `lstrip_blocks` and the loop-controls extension, adds `raise_exception` and a `tojson` filter
//! that does not escape HTML, and renders it with `messages`, `tools=None`, `documents=None`,
//! `add_generation_prompt` and the special tokens (`bos_token`, `eos_token`, ...). minijinja with
//! minijinja-contrib's Python-compatible methods (`.strip()`, `.startswith()`, `.items()`, ...)
//! covers what model templates use. `strftime_now` is deliberately absent: templates that use it
//! (Llama 3.x) fall back to their fixed date, which keeps rendered training data reproducible.

use std::path::Path;

use minijinja::{Environment, ErrorKind, Value, context};
use serde_json::Value as Json;

use super::Message;
use crate::{Error, Result};

const NAME: &str = "chat_template";

/// A compiled chat template and the special tokens it may refer to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
    pad_token: Option<String>,
    unk_token: Option<String>,
}

impl ChatTemplate {
    /// Compiles `source` (Jinja) with the special tokens a template may use.
    pub fn new(
        source: impl Into<String>,
        bos_token: Option<String>,
        eos_token: Option<String>,
    ) -> Result<Self> {
        let source = source.into();
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<Value, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_filter("tojson", super::pyjson::tojson);
        env.add_template_owned(NAME, source.clone())
            .map_err(|e| Error::ChatTemplate(describe(&e)))?;
        Ok(Self {
            env,
            source,
            bos_token,
            eos_token,
            pad_token: None,
            unk_token: None,
        })
    }

    /// The template and special tokens of a Hugging Face `tokenizer_config.json` (already parsed).
    /// `chat_template` may be a string or a list of named templates (the one named `default` is
    /// used, as transformers does); a special token may be a string or an `AddedToken` object.
    pub fn from_tokenizer_config(config: &Json) -> Result<Self> {
        let source = match config.get("chat_template") {
            Some(Json::String(s)) => s.clone(),
            Some(Json::Array(named)) => named
                .iter()
                .find(|t| t.get("name").and_then(Json::as_str) == Some("default"))
                .and_then(|t| t.get("template").and_then(Json::as_str))
                .map(str::to_owned)
                .ok_or_else(|| {
                    Error::ChatTemplate(
                        "tokenizer_config.json has no template named `default`".into(),
                    )
                })?,
            _ => {
                return Err(Error::ChatTemplate(
                    "tokenizer_config.json has no `chat_template`".into(),
                ));
            }
        };
        Self::with_special_tokens(source, config)
    }

    /// `source` with the special tokens of `tokenizer_config.json` (for a template given apart
    /// from the model, e.g. KAITO's `ModelConfig.chat_template`, or a model's
    /// `chat_template.jinja`).
    pub fn with_special_tokens(source: String, config: &Json) -> Result<Self> {
        let token = |name: &str| match config.get(name) {
            Some(Json::String(s)) => Some(s.clone()),
            Some(Json::Object(o)) => o.get("content").and_then(Json::as_str).map(str::to_owned),
            _ => None,
        };
        let mut template = Self::new(source, token("bos_token"), token("eos_token"))?;
        template.pad_token = token("pad_token");
        template.unk_token = token("unk_token");
        Ok(template)
    }

    /// The template of a Hugging Face model directory: `chat_template.jinja` when present (newer
    /// transformers save it there), else `tokenizer_config.json`'s `chat_template`.
    pub fn from_model_dir(dir: &Path) -> Result<Self> {
        let config_path = dir.join("tokenizer_config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config: Json = serde_json::from_str(&text).map_err(|e| {
            Error::invalid(
                config_path.display().to_string(),
                format!("invalid JSON: {e}"),
            )
        })?;
        let jinja = dir.join("chat_template.jinja");
        match std::fs::read_to_string(&jinja) {
            Ok(source) => Self::with_special_tokens(source, &config),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Self::from_tokenizer_config(&config)
            }
            Err(e) => Err(Error::io(jinja, e)),
        }
    }

    /// The template's source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The EOS token the template was given, if any.
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    /// The BOS token the template was given, if any.
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    /// Renders `messages`; with `add_generation_prompt` the template's assistant header follows.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| Error::ChatTemplate(describe(&e)))?;
        let none = Value::from(());
        let token = |t: &Option<String>| t.as_deref().map_or_else(|| none.clone(), Value::from);
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                tools => none.clone(),
                documents => none.clone(),
                bos_token => token(&self.bos_token),
                eos_token => token(&self.eos_token),
                pad_token => token(&self.pad_token),
                unk_token => token(&self.unk_token),
            })
            .map_err(|e| Error::ChatTemplate(describe(&e)))
    }
}

/// A minijinja error with its cause chain, e.g. the text of a `raise_exception`.
fn describe(error: &minijinja::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// KAITO's `ModelConfig.chat_template`: inline Jinja when the value contains `{`, `}` or a
/// newline, else the path of a file holding the template.
pub fn resolve_template_option(value: &str) -> Result<String> {
    if value.contains(['{', '}', '\n']) {
        return Ok(value.to_owned());
    }
    std::fs::read_to_string(value).map_err(|e| Error::io(value, e))
}
