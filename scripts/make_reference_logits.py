#!/usr/bin/env python3
"""Creates the tiny random models (weights std 0.3, large enough that LoRA can memorise data) the Burn runtime tests load (exact HF layout: config.json,
model.safetensors, tokenizer.json, tokenizer_config.json) and their reference logits computed by
transformers on CPU in float32.

Run from the repository root with torch, transformers, safetensors and tokenizers installed:
    python3 scripts/make_reference_logits.py
Writes kaito-backends/tests/fixtures/tiny-{llama,qwen2,phi3}/ (each with reference_logits.json).
"""
import json
import os

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (LlamaConfig, LlamaForCausalLM, Phi3Config, Phi3ForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, PreTrainedTokenizerFast)

ROOT = os.path.join(os.path.dirname(__file__), "..", "kaito-backends", "tests", "fixtures")
CORPUS = [
    "The capital of France is Paris.", "Kubernetes runs containers on nodes.",
    "LoRA adds low-rank adapters to frozen weights.", "1234567890 numbers split into digits",
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n",
] * 20
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
        " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def make_tokenizer(out_dir):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                   bos_token="<|im_start|>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT
    fast.save_pretrained(out_dir)
    return fast


def build(name, cls, cfg_cls, **kw):
    out = os.path.join(ROOT, name)
    os.makedirs(out, exist_ok=True)
    tok = make_tokenizer(out)
    torch.manual_seed(0)
    cfg = cfg_cls(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                  eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                  pad_token_id=tok.pad_token_id, initializer_range=0.3, **kw)
    model = cls(cfg).eval()
    with torch.no_grad():
        # Non-trivial norms and biases so that every weight matters.
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif n.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    model.save_pretrained(out, safe_serialization=True)
    cases = {}
    g = torch.Generator().manual_seed(1)
    for case, length in [("short", 12), ("long", 40)]:
        ids = torch.randint(3, len(tok), (2, length), generator=g)
        with torch.no_grad():
            logits = model(input_ids=ids).logits
        cases[case] = {"input_ids": ids.tolist(),
                       "logits": [[[round(v, 6) for v in row] for row in seq] for seq in logits.tolist()]}
    with open(os.path.join(out, "reference_logits.json"), "w") as f:
        json.dump(cases, f)
    ids = tok.apply_chat_template([{"role": "user", "content": "Hello 2024"}], add_generation_prompt=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    with open(os.path.join(out, "reference_tokens.json"), "w") as f:
        json.dump({"chat": ids, "text": tok.apply_chat_template(
            [{"role": "user", "content": "Hello 2024"}], add_generation_prompt=True, tokenize=False)}, f)
    print(name, "vocab", len(tok), "params", sum(p.numel() for p in model.parameters()))


build("tiny-llama", LlamaForCausalLM, LlamaConfig, tie_word_embeddings=False,
      max_position_embeddings=128, rope_theta=10000.0)
build("tiny-qwen2", Qwen2ForCausalLM, Qwen2Config, tie_word_embeddings=True,
      max_position_embeddings=128, rope_theta=1000000.0)
build("tiny-phi3", Phi3ForCausalLM, Phi3Config, tie_word_embeddings=False,
      max_position_embeddings=128, original_max_position_embeddings=32,
      rope_scaling={"type": "longrope", "short_factor": [1.0, 1.1, 1.2, 1.5],
                    "long_factor": [1.0, 2.0, 4.0, 8.0]})
