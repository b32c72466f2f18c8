//! Records into token ids and labels, with the loss masks TRL's `SFTTrainer` uses.

use std::ops::Range;

use tokenizers::Tokenizer;

use super::{ChatTemplate, Message, Record};
use crate::{Error, Result};

/// The label of a token that takes no part in the loss (PyTorch's `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// One training sequence. `labels[i]` is the token at position `i` (`input_ids[i]`) or
/// [`IGNORE_INDEX`]; labels are *not* shifted: as in transformers, the model's loss compares the
/// logits at position `i` with `labels[i + 1]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizedExample {
    /// Token ids.
    pub input_ids: Vec<u32>,
    /// Same length as `input_ids`; [`IGNORE_INDEX`] where the token is not trained on.
    pub labels: Vec<i64>,
}

impl TokenizedExample {
    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// Whether the example has no tokens.
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// The number of labels that count towards the loss.
    pub fn trainable_tokens(&self) -> usize {
        self.labels.iter().filter(|&&l| l != IGNORE_INDEX).count()
    }

    fn truncate(&mut self, max: Option<usize>) {
        if let Some(max) = max {
            self.input_ids.truncate(max);
            self.labels.truncate(max);
        }
    }
}

/// Turns [`Record`]s into [`TokenizedExample`]s as TRL's `SFTTrainer` does:
/// - text: `text` (+ EOS unless it already ends with it), every token trained;
/// - prompt/completion: `prompt + completion` (+ EOS), trained from the first token after the
///   tokenized prompt (TRL's `completion_only_loss`);
/// - messages: the chat template's rendering (no special tokens added: the template has them),
///   trained on assistant turns only (TRL's `assistant_only_loss`). The assistant spans are found
///   by rendering prefixes of the conversation, so templates need no `{% generation %}` markers.
///
/// Sequences longer than `max_seq_length` are cut at the end (TRL's `max_length`, 1024 by default
/// there; here no limit unless set).
#[derive(Debug)]
pub struct ExampleTokenizer {
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    eos_token: Option<String>,
    max_seq_length: Option<usize>,
}

impl ExampleTokenizer {
    /// A tokenizer for records; `template` is needed for `messages` data only. The EOS text is
    /// the template's `eos_token` unless [`Self::with_eos_token`] sets one.
    pub fn new(tokenizer: Tokenizer, template: Option<ChatTemplate>) -> Self {
        let eos_token = template
            .as_ref()
            .and_then(|t| t.eos_token().map(str::to_owned));
        Self {
            tokenizer,
            template,
            eos_token,
            max_seq_length: None,
        }
    }

    /// Sets the EOS token text appended to text and completions.
    pub fn with_eos_token(mut self, eos: impl Into<String>) -> Self {
        self.eos_token = Some(eos.into());
        self
    }

    /// Cuts sequences to at most `max` tokens.
    pub fn with_max_seq_length(mut self, max: usize) -> Self {
        self.max_seq_length = Some(max);
        self
    }

    /// The underlying tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// All records; an error names the record's index.
    pub fn tokenize_all(&self, records: &[Record]) -> Result<Vec<TokenizedExample>> {
        records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                self.tokenize(r).map_err(|e| match e {
                    Error::ChatTemplate(m) => Error::ChatTemplate(format!("record {i}: {m}")),
                    Error::Tokenizer(m) => Error::Tokenizer(format!("record {i}: {m}")),
                    other => other,
                })
            })
            .collect()
    }

    /// One record.
    pub fn tokenize(&self, record: &Record) -> Result<TokenizedExample> {
        let mut example = match record {
            Record::Text(text) => {
                let ids = self.encode(&self.with_eos(text)?, true)?.get_ids().to_vec();
                let labels = ids.iter().map(|&id| i64::from(id)).collect();
                TokenizedExample {
                    input_ids: ids,
                    labels,
                }
            }
            Record::PromptCompletion { prompt, completion } => {
                let prompt_len = self.encode(prompt, true)?.get_ids().len();
                let full = format!("{prompt}{}", self.with_eos(completion)?);
                let ids = self.encode(&full, true)?.get_ids().to_vec();
                let labels = ids
                    .iter()
                    .enumerate()
                    .map(|(i, &id)| {
                        if i < prompt_len {
                            IGNORE_INDEX
                        } else {
                            i64::from(id)
                        }
                    })
                    .collect();
                TokenizedExample {
                    input_ids: ids,
                    labels,
                }
            }
            Record::Messages(messages) => self.tokenize_messages(messages)?,
        };
        example.truncate(self.max_seq_length);
        Ok(example)
    }

    fn with_eos(&self, text: &str) -> Result<String> {
        let eos = self.eos_token.as_deref().ok_or_else(|| {
            Error::Tokenizer(
                "the EOS token is unknown (no chat template eos_token and none set)".into(),
            )
        })?;
        Ok(if text.ends_with(eos) {
            text.to_owned()
        } else {
            format!("{text}{eos}")
        })
    }

    fn encode(&self, text: &str, add_special_tokens: bool) -> Result<tokenizers::Encoding> {
        self.tokenizer
            .encode(text, add_special_tokens)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    fn tokenize_messages(&self, messages: &[Message]) -> Result<TokenizedExample> {
        let template = self.template.as_ref().ok_or_else(|| {
            Error::ChatTemplate("`messages` data needs the model's chat template".into())
        })?;
        let full = template.render(messages, false)?;
        let spans = assistant_spans(template, messages, &full)?;
        let encoding = self.encode(&full, false)?;
        let labels = encoding
            .get_ids()
            .iter()
            .zip(encoding.get_offsets())
            .map(|(&id, &(start, _))| {
                if spans.iter().any(|s| s.contains(&start)) {
                    i64::from(id)
                } else {
                    IGNORE_INDEX
                }
            })
            .collect();
        Ok(TokenizedExample {
            input_ids: encoding.get_ids().to_vec(),
            labels,
        })
    }
}

/// The byte ranges of `full` (the whole conversation rendered) that assistant turns produced:
/// from the end of the prefix rendered with the generation prompt to the end of the prefix that
/// includes the turn. Templates that close a conversation with `eos_token` (Phi-3) render it after
/// every prefix; it belongs to the turn only when it is in `full` at that place.
fn assistant_spans(
    template: &ChatTemplate,
    messages: &[Message],
    full: &str,
) -> Result<Vec<Range<usize>>> {
    let not_prefix = |i: usize| {
        Error::ChatTemplate(format!(
            "cannot find assistant message {i} in the rendered conversation: the template does not \
             render a conversation's prefixes as prefixes of the whole"
        ))
    };
    let mut spans = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        if message.role != "assistant" {
            continue;
        }
        let before = template.render(&messages[..i], true)?;
        if !full.starts_with(&before) {
            return Err(not_prefix(i));
        }
        let through = template.render(&messages[..=i], false)?;
        let end = if full.starts_with(&through) {
            through.len()
        } else {
            match template
                .eos_token()
                .and_then(|eos| through.strip_suffix(eos))
            {
                Some(trimmed) if full.starts_with(trimmed) => trimmed.len(),
                _ => return Err(not_prefix(i)),
            }
        };
        if end > before.len() {
            spans.push(before.len()..end);
        }
    }
    Ok(spans)
}
