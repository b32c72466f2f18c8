#!/usr/bin/env python3
"""PyTorch + transformers + peft on the CPU, timing what benches/runtime_cpu.rs times in Burn:
a LoRA training step (forward, loss, backward, AdamW) and greedy KV-cached generation, on
  - small-llama: the shape of benches/shapes.rs SMALL_LLAMA (random weights), LoRA r=8 on all
    seven projections, batch 4 x 128; generation: 16-token prompt, 64 new tokens;
  - smollm2-135m: SmolLM2-135M-Instruct from the offline GGUF (dequantized to f32 by
    transformers' GGUF reader), LoRA r=16 on all seven projections, batch
    $KAITO_BENCH_SMOLLM2_BATCH (default 1) x 128; generation: 16-token prompt, 32 new tokens.
Token ids use the same formula as shapes::token_ids. Prints one JSON object per measurement.

    python3 benches/pytorch_cpu.py [--threads N] [--only small-llama|smollm2-135m]
"""
import argparse, json, os, statistics, sys, time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def token_ids(batch, seq, vocab):
    return torch.tensor([[3 + (i * 7919 + b * 104729) % (vocab - 3) for i in range(seq)]
                         for b in range(batch)], dtype=torch.long)


def timed(fn, min_iters=10, min_seconds=5.0, warmup=1):
    """Mean seconds per call over at least min_iters calls and min_seconds (criterion-like)."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.mean(times), statistics.median(times), len(times)


def bench(name, model, r, batch, seq, new_tokens):
    vocab = model.config.vocab_size
    # Generation first, on the plain model (the Burn side generates without adapters).
    model.eval()
    prompt = token_ids(1, 16, vocab)

    @torch.inference_mode()
    def generate():
        out = model(input_ids=prompt, use_cache=True)
        cache = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(new_tokens - 1):
            out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)

    gen = timed(generate)

    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0,
                                                  target_modules=ALL7, task_type="CAUSAL_LM"))
    peft_model.train()
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4)
    ids = token_ids(batch, seq, vocab)

    def step():
        loss = peft_model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    mean, median, n = timed(step)
    print(json.dumps({"model": name, "bench": f"train_lora_r{r}_b{batch}x{seq}", "iters": n,
                      "ms_per_iter": mean * 1e3, "ms_median": median * 1e3,
                      "tokens_per_s": batch * seq / mean}), flush=True)
    mean, median, n = gen
    print(json.dumps({"model": name, "bench": f"generate_greedy_{new_tokens}", "iters": n,
                      "ms_per_iter": mean * 1e3, "ms_median": median * 1e3,
                      "tokens_per_s": new_tokens / mean}), flush=True)


def small_llama():
    cfg = LlamaConfig(vocab_size=2048, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=4, rms_norm_eps=1e-5,
                      rope_theta=10000.0, max_position_embeddings=2048, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    bench("small-llama", model, r=8, batch=4, seq=128, new_tokens=64)


def smollm2():
    repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    path = os.environ.get("KAITO_SMOLLM2_GGUF",
                          os.path.join(repo, ".cache", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    if not os.path.isfile(path):
        print(f"skipping smollm2-135m: {path} is missing (run scripts/fetch-smollm2.sh)",
              file=sys.stderr)
        return
    d, f = os.path.split(os.path.abspath(path))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    batch = int(os.environ.get("KAITO_BENCH_SMOLLM2_BATCH", "1"))
    bench("smollm2-135m", model, r=16, batch=batch, seq=128, new_tokens=32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--only", choices=["small-llama", "smollm2-135m"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    if args.only in (None, "small-llama"):
        small_llama()
    if args.only in (None, "smollm2-135m"):
        smollm2()


if __name__ == "__main__":
    main()
