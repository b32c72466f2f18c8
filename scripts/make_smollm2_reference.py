#!/usr/bin/env python3
"""Greedy reference continuation of SmolLM2-135M-Instruct (the GGUF from scripts/fetch-smollm2.sh,
dequantized by transformers' GGUF reader) for the Burn runtime's test.
    python3 scripts/make_smollm2_reference.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import json, os, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

path = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "KAITO_SMOLLM2_GGUF", os.path.join(os.path.dirname(__file__), "..", ".cache", "smollm2",
                                       "SmolLM2-135M-Instruct.Q4_1.gguf"))
d, f = os.path.split(os.path.abspath(path))
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32).eval()
msgs = [{"role": "user", "content": "What is the capital of France?"}]
text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
ids = tok(text, return_tensors="pt").input_ids
with torch.no_grad():
    out = model.generate(ids, max_new_tokens=24, do_sample=False)
new = out[0, ids.shape[1]:].tolist()
ref = {"prompt": text, "prompt_ids": ids[0].tolist(), "generated_ids": new,
       "generated_text": tok.decode(new, skip_special_tokens=True)}
out_path = os.path.join(os.path.dirname(__file__), "..", "kaito-backends", "tests", "fixtures", "smollm2",
                        "reference_generation.json")
with open(out_path, "w") as fh:
    json.dump(ref, fh, indent=1)
print(json.dumps(ref))
