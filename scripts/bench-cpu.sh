#!/usr/bin/env bash
# CPU benchmarks of the Burn runtime against PyTorch + transformers + peft, in one run:
#  1. Burn (ndarray, f32): `cargo bench -p kaito-backends --bench runtime_cpu` (criterion);
#  2. PyTorch (f32): benches/pytorch_cpu.py, same shapes, batch, LoRA targets and thread count;
#  3. the two side by side (tokens/s, from criterion's estimates and the script's JSON);
#  4. LoRA vs QLoRA memory on SmolLM2-135M (examples/lora_memory.rs, one process per method);
#  5. with --flex, the ndarray-vs-flex comparison (examples/cpu_backends.rs; compiles Burn's flex
#     backend in release, which takes a while on 2 cores).
# usage: scripts/bench-cpu.sh [--flex] [--no-memory]
# env:   THREADS (default: nproc), PYTHON (default: .cache/venv/bin/python, else python3),
#        KAITO_BENCH_SMOLLM2_BATCH (default 1), KAITO_SMOLLM2_GGUF (scripts/fetch-smollm2.sh).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
flex=0; memory=1
for a in "$@"; do
  case "$a" in
    --flex) flex=1 ;;
    --no-memory) memory=0 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
threads="${THREADS:-$(nproc)}"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x .cache/venv/bin/python ]; then py=.cache/venv/bin/python; else py=python3; fi
fi
# Burn's ndarray backend threads through rayon (`host_gemm` cuts each large product into one block
# per thread), with one matrixmultiply kernel thread per block as the `kaito` binary sets it;
# torch threads through its own pool.
export RAYON_NUM_THREADS="$threads" MATMUL_NUM_THREADS=1 OMP_NUM_THREADS="$threads"
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT

echo "== $(date -u +%FT%TZ) threads=$threads; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench -p kaito-backends --bench runtime_cpu 2>&1 | tee "$out/burn.txt"
echo "== load after Burn: $(cut -d' ' -f1-3 /proc/loadavg)"
"$py" -W ignore benches/pytorch_cpu.py --threads "$threads" | tee "$out/torch.jsonl"
echo "== load after PyTorch: $(cut -d' ' -f1-3 /proc/loadavg)"

"$py" - "$repo/target/criterion" "$out/torch.jsonl" <<'PY'
import glob, json, os, sys
crit, torch_file = sys.argv[1], sys.argv[2]
burn = {}
for bj in glob.glob(os.path.join(crit, "*", "*", "new", "benchmark.json")):
    meta = json.load(open(bj))
    est = json.load(open(os.path.join(os.path.dirname(bj), "estimates.json")))
    elems = (meta.get("throughput") or {}).get("Elements")
    secs = est["mean"]["point_estimate"] * 1e-9
    if elems:
        burn[(meta["group_id"], meta["function_id"])] = (secs * 1e3, elems / secs)
torch = {}
for line in open(torch_file):
    r = json.loads(line)
    if "bench" in r:
        torch[(r["model"], r["bench"])] = (r["ms_per_iter"], r["tokens_per_s"])
print()
print(f"{'model':<14} {'benchmark':<24} {'Burn ms':>9} {'Burn tok/s':>11} {'torch ms':>9} {'torch tok/s':>12} {'Burn/torch':>10}")
for key in sorted(set(burn) | set(torch)):
    b, t = burn.get(key), torch.get(key)
    fmt = lambda x, f: (f % x) if x is not None else "-"
    ratio = f"{b[1] / t[1]:.2f}x" if b and t else "-"
    print(f"{key[0]:<14} {key[1]:<24} {fmt(b and b[0], '%.1f'):>9} {fmt(b and b[1], '%.1f'):>11} "
          f"{fmt(t and t[0], '%.1f'):>9} {fmt(t and t[1], '%.1f'):>12} {ratio:>10}")
PY

if [ "$memory" = 1 ]; then
  echo
  echo "== LoRA vs QLoRA memory (SmolLM2-135M, f32 compute; one process each)"
  cargo build --release -p kaito-backends --example lora_memory
  for m in lora qlora; do
    target/release/examples/lora_memory "$m" 2 1
  done
fi

if [ "$flex" = 1 ]; then
  echo
  echo "== ndarray vs flex (examples/cpu_backends.rs)"
  cargo run --release -p kaito-backends --example cpu_backends --features flex
fi
echo "== load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
