//! Chat templates render exactly as transformers' `apply_chat_template`.

use super::*;
use crate::data::{ChatTemplate, resolve_template_option};

fn chat() -> Vec<Message> {
    vec![
        msg("user", "Hi"),
        msg("assistant", "Hello!"),
        msg("user", "Thanks"),
    ]
}

#[test]
fn smollm2_chatml() {
    let t = ChatTemplate::new(CHATML, None, Some("<|im_end|>".into())).unwrap();
    assert_eq!(
        t.render(&chat()[..2], false).unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
    );
    let with_system = [msg("system", "Be brief."), msg("user", "Hi")];
    assert_eq!(
        t.render(&with_system, true).unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn phi3() {
    let t = ChatTemplate::new(PHI3, Some("<s>".into()), Some("<|endoftext|>".into())).unwrap();
    let mut msgs = vec![msg("system", "S")];
    msgs.extend(chat());
    assert_eq!(
        t.render(&msgs, false).unwrap(),
        "<|system|>\nS<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\nThanks<|end|>\n<|endoftext|>"
    );
    assert_eq!(
        t.render(&chat()[..1], true).unwrap(),
        "<|user|>\nHi<|end|>\n<|assistant|>\n"
    );
}

#[test]
fn trim_lstrip_blocks_and_python_methods() {
    let source = "{% for m in messages %}\n    {% if m.role == 'user' %}\n    {{ m.role.upper() }}: {{ m.content.strip() }}\n    {% endif %}\n{% endfor %}\n";
    let t = ChatTemplate::new(source, None, None).unwrap();
    let out = t
        .render(&[msg("user", "  padded  "), msg("assistant", "x")], false)
        .unwrap();
    assert_eq!(out, "    USER: padded\n");
}

#[test]
fn raise_exception_is_an_error_with_its_message() {
    let source = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation must start with the user') }}{% endif %}ok";
    let t = ChatTemplate::new(source, None, None).unwrap();
    assert_eq!(t.render(&[msg("user", "x")], false).unwrap(), "ok");
    let e = err_text(t.render(&[msg("assistant", "x")], false));
    assert!(e.contains("Conversation must start with the user"), "{e}");
}

#[test]
fn tojson_like_python_json_dumps() {
    let t = ChatTemplate::new(
        "{{ messages[0] | tojson }}|{{ messages | tojson(indent=2) }}",
        None,
        None,
    )
    .unwrap();
    let out = t.render(&[msg("user", "a <b> & é")], false).unwrap();
    assert_eq!(
        out,
        "{\"role\": \"user\", \"content\": \"a <b> & é\"}|[\n  {\n    \"role\": \"user\",\n    \"content\": \"a <b> & é\"\n  }\n]"
    );
}

#[test]
fn undefined_tools_are_none_and_loop_controls_work() {
    let source = "{% if tools is not none %}tools{% endif %}{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.content }}{% endfor %}";
    let t = ChatTemplate::new(source, None, None).unwrap();
    assert_eq!(t.render(&chat(), false).unwrap(), "Hi");
}

#[test]
fn from_tokenizer_config_and_model_dir() {
    let config = serde_json::json!({
        "chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": "{{ bos_token }}{{ eos_token }}"}],
        "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"
    });
    let t = ChatTemplate::from_tokenizer_config(&config).unwrap();
    assert_eq!(t.render(&[], false).unwrap(), "<s></s>");
    let e = err_text(ChatTemplate::from_tokenizer_config(
        &serde_json::json!({"eos_token": "</s>"}),
    ));
    assert!(e.contains("no `chat_template`"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({"chat_template": "from config", "eos_token": "<|im_end|>"});
    text_file(dir.path(), "tokenizer_config.json", &config.to_string());
    assert_eq!(
        ChatTemplate::from_model_dir(dir.path())
            .unwrap()
            .render(&[], false)
            .unwrap(),
        "from config"
    );
    text_file(
        dir.path(),
        "chat_template.jinja",
        "{{ eos_token }} from file",
    );
    assert_eq!(
        ChatTemplate::from_model_dir(dir.path())
            .unwrap()
            .render(&[], false)
            .unwrap(),
        "<|im_end|> from file"
    );
    let e = err_text(ChatTemplate::new("{% for %}", None, None));
    assert!(e.starts_with("chat template:"), "{e}");
}

#[test]
fn kaito_chat_template_option_inline_or_file() {
    assert_eq!(resolve_template_option("{{ x }}").unwrap(), "{{ x }}");
    let dir = tempfile::tempdir().unwrap();
    let path = text_file(dir.path(), "t.jinja", "{{ y }}");
    assert_eq!(
        resolve_template_option(path.to_str().unwrap()).unwrap(),
        "{{ y }}"
    );
    assert!(err_text(resolve_template_option("/no/such/template")).contains("/no/such/template"));
}
