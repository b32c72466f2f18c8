//! Token ids and loss masks per record shape.

use super::*;
use crate::data::{ChatTemplate, ExampleTokenizer, IGNORE_INDEX, Record, TokenizedExample};

/// The tokens that carry a label (the label must equal the token id).
fn trained(tok: &tokenizers::Tokenizer, e: &TokenizedExample) -> Vec<String> {
    assert_eq!(e.input_ids.len(), e.labels.len());
    let ids = e
        .input_ids
        .iter()
        .zip(&e.labels)
        .filter(|(_, l)| **l != IGNORE_INDEX)
        .map(|(&id, &l)| {
            assert_eq!(i64::from(id), l);
            id
        });
    tokens(tok, ids)
}

fn chatml() -> ExampleTokenizer {
    let t = ChatTemplate::new(CHATML, None, Some("<|im_end|>".into())).unwrap();
    ExampleTokenizer::new(tokenizer(), Some(t))
}

#[test]
fn text_trains_every_token_and_appends_eos_once() {
    let et = ExampleTokenizer::new(tokenizer(), None).with_eos_token("<|endoftext|>");
    let e = et.tokenize(&Record::Text("hello world".into())).unwrap();
    assert_eq!(
        tokens(et.tokenizer(), e.input_ids.clone()),
        ["hello", "world", "<|endoftext|>"]
    );
    assert_eq!(
        trained(et.tokenizer(), &e),
        ["hello", "world", "<|endoftext|>"]
    );
    let again = et
        .tokenize(&Record::Text("hello world<|endoftext|>".into()))
        .unwrap();
    assert_eq!(again, e);
}

#[test]
fn prompt_completion_trains_completion_and_eos() {
    let et = ExampleTokenizer::new(tokenizer(), None).with_eos_token("<|endoftext|>");
    let r = Record::PromptCompletion {
        prompt: "Q: What is the codename?".into(),
        completion: " A: Blue Heron.".into(),
    };
    let e = et.tokenize(&r).unwrap();
    assert_eq!(tokens(et.tokenizer(), e.input_ids.clone()).len(), 13);
    assert_eq!(
        trained(et.tokenizer(), &e),
        ["A", ":", "Blue", "Heron", ".", "<|endoftext|>"]
    );
}

#[test]
fn messages_train_assistant_turns_only_chatml() {
    let et = chatml();
    let r = Record::Messages(vec![
        msg("user", "Hi"),
        msg("assistant", "Hello!"),
        msg("user", "What is the codename?"),
        msg("assistant", "Blue Heron."),
    ]);
    let e = et.tokenize(&r).unwrap();
    assert_eq!(
        trained(et.tokenizer(), &e),
        [
            "Hello",
            "!",
            "<|im_end|>",
            "Blue",
            "Heron",
            ".",
            "<|im_end|>"
        ]
    );
    // The whole rendering is tokenized, system prompt included, without added special tokens.
    let all = tokens(et.tokenizer(), e.input_ids.clone());
    assert_eq!(all[..3], ["<|im_start|>", "system", "You"]);
    assert_eq!(all.iter().filter(|t| *t == "<|im_start|>").count(), 5);
}

#[test]
fn messages_phi3_eos_trained_only_at_the_end() {
    let t = ChatTemplate::new(PHI3, None, Some("<|endoftext|>".into())).unwrap();
    let et = ExampleTokenizer::new(tokenizer(), Some(t));
    let r = Record::Messages(vec![
        msg("system", "Be brief"),
        msg("user", "Hi"),
        msg("assistant", "Hello!"),
        msg("user", "Thanks"),
        msg("assistant", "welcome"),
    ]);
    let e = et.tokenize(&r).unwrap();
    assert_eq!(
        trained(et.tokenizer(), &e),
        [
            "Hello",
            "!",
            "<|end|>",
            "welcome",
            "<|end|>",
            "<|endoftext|>"
        ]
    );
}

#[test]
fn truncation_and_errors_name_the_record() {
    let et = chatml().with_max_seq_length(4);
    let e = et
        .tokenize(&Record::Messages(vec![
            msg("user", "Hi"),
            msg("assistant", "Hello!"),
        ]))
        .unwrap();
    assert_eq!((e.input_ids.len(), e.labels.len()), (4, 4));
    assert_eq!(e.trainable_tokens(), 0);

    let no_template = ExampleTokenizer::new(tokenizer(), None);
    let records = [
        Record::Text("hello".into()),
        Record::Messages(vec![msg("user", "Hi")]),
    ];
    let e = err_text(
        no_template
            .with_eos_token("<|endoftext|>")
            .tokenize_all(&records),
    );
    assert!(e.contains("record 1") && e.contains("chat template"), "{e}");
    let e = err_text(ExampleTokenizer::new(tokenizer(), None).tokenize(&records[0]));
    assert!(e.contains("EOS token is unknown"), "{e}");
}

#[test]
fn template_without_prefix_renderings_is_an_error() {
    // Renders turns in reverse, so a prefix is not a prefix of the whole.
    let t = ChatTemplate::new(
        "{% for m in messages|reverse %}{{ m.content }} {% endfor %}",
        None,
        None,
    )
    .unwrap();
    let et = ExampleTokenizer::new(tokenizer(), Some(t));
    let r = Record::Messages(vec![
        msg("user", "Hi"),
        msg("assistant", "Hello"),
        msg("user", "Thanks"),
    ]);
    let e = err_text(et.tokenize(&r));
    assert!(e.contains("assistant message 1"), "{e}");
}
