#!/usr/bin/env python3
"""PyTorch + transformers + peft half of scripts/gpu-bench.sh: LoRA or QLoRA (bitsandbytes NF4,
double quantization) training steps on a phi-3-mini-shaped model (random weights, bf16, sdpa
attention, no gradient checkpointing), the same shape, targets, rank, batch and token ids as
kaito-backends/examples/gpu_bench.rs.

    python3 benches/pytorch_gpu.py <lora|qlora> [--batch 4] [--seq 1024] [--steps 4] [--r 8]
                                   [--layers 32] [--peak-tflops 790]

MFU = 4 * N * tokens/s / peak with N = all base parameters (the formula gpu_bench.rs uses:
forward 2N + activation gradients 2N per token, no weight gradients for the frozen base,
attention score/value and LoRA matmuls not counted). Prints one RESULT line.
"""
import argparse, sys, time

import torch
from peft import LoraConfig, get_peft_model
from transformers import Phi3Config, Phi3ForCausalLM

TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]


def token_ids(batch, seq, vocab):
    return torch.tensor([[3 + (i * 7919 + b * 104729) % (vocab - 3) for i in range(seq)]
                         for b in range(batch)], dtype=torch.long)


def to_nf4(model):
    """Replaces every decoder-layer nn.Linear with a bitsandbytes NF4 Linear4bit (as
    BitsAndBytesConfig(load_in_4bit, nf4, double quant, bf16 compute) loads a checkpoint)."""
    import bitsandbytes as bnb
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, lin in list(parent.named_children()):
                if not isinstance(lin, torch.nn.Linear):
                    continue
                q = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=lin.bias is not None,
                                      compute_dtype=torch.bfloat16, compress_statistics=True,
                                      quant_type="nf4", device="meta")
                q.weight = bnb.nn.Params4bit(lin.weight.data, requires_grad=False,
                                             compress_statistics=True, quant_type="nf4")
                if lin.bias is not None:
                    q.bias = torch.nn.Parameter(lin.bias.data, requires_grad=False)
                setattr(parent, name, q.to("cuda"))
                del lin
    torch.cuda.empty_cache()
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("method", choices=["lora", "qlora"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--peak-tflops", type=float, default=790.0)
    ap.add_argument("--device", default="cuda", help="cpu only for a smoke test of the script")
    ap.add_argument("--dtype", default="bfloat16", help="float32 for a CPU smoke test")
    a = ap.parse_args()

    cfg = Phi3Config(vocab_size=32064, hidden_size=3072, intermediate_size=8192,
                     num_hidden_layers=a.layers, num_attention_heads=32, num_key_value_heads=32,
                     rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=4096,
                     tie_word_embeddings=False, bos_token_id=1, eos_token_id=32000,
                     pad_token_id=32000, attn_implementation="sdpa")
    t0 = time.perf_counter()
    torch.manual_seed(0)
    torch.set_default_dtype(getattr(torch, a.dtype))
    with torch.device(a.device):
        model = Phi3ForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    if a.method == "qlora":
        try:
            model = to_nf4(model)
        except ImportError as e:
            print(f"RESULT side=torch method=qlora error=bitsandbytes_missing ({e})")
            return 0
    model = get_peft_model(model, LoraConfig(r=a.r, lora_alpha=2 * a.r, lora_dropout=0.0,
                                             target_modules=TARGETS, task_type="CAUSAL_LM"))
    model.train()
    n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = token_ids(a.batch, a.seq, cfg.vocab_size).to(a.device)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    sync()
    load_s = time.perf_counter() - t0
    print(f"torch {a.method}: {n_params / 1e9:.3f} B params, LoRA {n_lora / 1e6:.1f} M, "
          f"build {load_s:.1f} s, torch {torch.__version__}", file=sys.stderr)

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    t = time.perf_counter()
    step()
    first_s = time.perf_counter() - t
    step()  # second warm-up step (allocator, cuBLAS heuristics)
    times = []
    loss = 0.0
    for i in range(a.steps):
        sync()
        t = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - t)
        print(f"step {i + 3} {times[-1] * 1e3:.0f} ms, loss {loss:.3f}", file=sys.stderr)
    mean = sum(times) / len(times)
    tps = a.batch * a.seq / mean
    mfu = 4 * n_params * tps / (a.peak_tflops * 1e12)
    gib = 1 << 30
    cuda = a.device == "cuda"
    print(f"RESULT side=torch method={a.method} batch={a.batch} seq={a.seq} layers={a.layers} "
          f"ms_per_step={mean * 1e3:.1f} tokens_per_s={tps:.0f} mfu={mfu:.4f} "
          f"first_step_s={first_s:.1f} load_s={load_s:.1f} loss={loss:.4f} "
          f"torch_max_alloc_gib={(torch.cuda.max_memory_allocated() if cuda else 0) / gib:.2f} "
          f"torch_max_reserved_gib={(torch.cuda.max_memory_reserved() if cuda else 0) / gib:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
