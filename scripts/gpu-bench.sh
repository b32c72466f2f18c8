#!/usr/bin/env bash
# GPU benchmark (issue 3 §9), one call on a GPU machine (an H200 with PyTorch, transformers, peft
# and, for PEFT QLoRA, bitsandbytes): LoRA and QLoRA training steps on a phi-3-mini-shaped model
# (random weights, bf16, batch 4 x 1024, LoRA r=8 on qkv_proj/o_proj/gate_up_proj/down_proj,
# AdamW, no gradient checkpointing) with
#   - PyTorch + transformers + peft (benches/pytorch_gpu.py), and
#   - burn-cuda (kaito-backends/examples/gpu_bench.rs),
# each method in its own process, printing ms/step, tokens/s, MFU and peak GPU memory side by side.
#
# MFU = 4 * N * tokens/s / PEAK_TFLOPS (N = 3.82e9 base parameters; forward 2N + activation
# gradients 2N per token, the frozen base gets no weight gradients; attention's own matmuls and the
# LoRA matmuls are not counted). PEAK_TFLOPS defaults to 790, the bf16 rate cuBLAS reached on the
# H200 (deps.md), so the figures compare with deps.md's PEFT reference (13,507 tokens/s, 26.1 %).
# Peak GPU memory = the largest `nvidia-smi memory.used` sampled every 100 ms during the process,
# minus the value before it started (the same for both sides; torch's own counters are printed too).
#
# The Burn binary: $GPU_BENCH_BIN if set, else target/release/examples/gpu_bench, built here with
# `cargo build --release -p kaito-backends --example gpu_bench --features cuda` if cargo exists.
# A machine without Rust can run a binary built elsewhere (it needs only libcuda and libnvrtc at
# run time): build it on the CI-like machine and carry target/release/examples/gpu_bench.
#
# usage: scripts/gpu-bench.sh        (at most BUDGET_S = 540 s; runs that would not fit are skipped
#                                     and listed as such; each run has its own timeout)
# env:   PYTHON, GPU_BENCH_BIN, BATCH (4), SEQ (1024), R (8), LAYERS (32), PEAK_TFLOPS (790),
#        TORCH_STEPS (4), BURN_STEPS (3), BURN_QLORA_STEPS (2), TIMEOUT_TORCH (150),
#        TIMEOUT_BURN (240), TIMEOUT_BURN_WARM (90), TIMEOUT_BURN_QLORA (150), TIMEOUT_GEMM (90),
#        TIMEOUT_ATTENTION (60),
#        BUDGET_S (540), ONLY (torch|burn), CUBECL_AUTOTUNE_LEVEL,
#        WARM (1: run burn lora a second time on the kernel cache the first run filled, to time
#        the first step of a job whose node already compiled the kernels; 0 skips it).
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
batch="${BATCH:-4}"; seq="${SEQ:-1024}"; r="${R:-8}"; layers="${LAYERS:-32}"
peak="${PEAK_TFLOPS:-790}"
common=(--batch "$batch" --seq "$seq" --r "$r" --layers "$layers" --peak-tflops "$peak")

# Where the H200 machine keeps libnvrtc and libcuda (deps.md), if present.
for d in /opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib /usr/local/nvidia/lib64; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x /opt/torch/.venv/bin/python ]; then py=/opt/torch/.venv/bin/python; else py=python3; fi
fi
bin="${GPU_BENCH_BIN:-$repo/target/release/examples/gpu_bench}"
if [ "${ONLY:-}" != torch ] && [ ! -x "$bin" ]; then
  if command -v cargo >/dev/null; then
    cargo build --release -p kaito-backends --example gpu_bench --features cuda || exit 1
  else
    echo "no Burn binary at $bin and no cargo here: set GPU_BENCH_BIN" >&2
  fi
fi
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$py" -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)' || true

used_mib() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1; }

# run NAME TIMEOUT CMD...: runs CMD with a memory sampler, appends its RESULT line + peak memory.
run() {
  local name="$1" limit="$2"; shift 2
  local before; before="$(used_mib)"
  ( while :; do used_mib; sleep 0.1; done ) > "$out/$name.mem" 2>/dev/null &
  local sampler=$!
  local t0=$SECONDS
  echo "== $name (timeout ${limit}s): $*"
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
  local rc=${PIPESTATUS[0]}
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  local peak_mib; peak_mib="$(sort -n "$out/$name.mem" | tail -1)"
  local delta=$(( ${peak_mib:-0} - ${before:-0} ))
  local res; res="$(grep '^RESULT' "$out/$name.log")"
  [ -z "$res" ] && res="RESULT error=rc_$rc"
  local tail_="run=$name peak_gpu_gib=$(awk -v m="$delta" 'BEGIN{printf "%.1f", m/1024}') wall_s=$((SECONDS - t0))"
  while read -r line; do echo "$line $tail_"; done <<< "$res" >> "$out/results"
}

# In order of what matters most, each skipped once the total budget (BUDGET_S) is spent, so
# one device call of at most 10 minutes always ends with a table:
#  1. gemm: the base's products alone, our cuBLAS path vs Burn's matmul (correctness + TFLOP/s);
#  1b. attention forward + backward alone: the runtime's op vs Burn's ops (time, peak memory);
#  2. burn LoRA on a fresh kernel cache (cold first step + throughput), 3. again warm;
#  4. PEFT LoRA, 5. burn QLoRA, 6. PEFT QLoRA, 7. burn LoRA with KAITO_CUBLAS=0 (the A/B).
budget="${BUDGET_S:-540}"
start=$SECONDS
# within LIMIT NAME TIMEOUT CMD...: `run`, unless fewer than TIMEOUT seconds of the budget are left.
within() {
  local name="$1" limit="$2"; shift 2
  local left=$(( budget - (SECONDS - start) ))
  if [ "$left" -lt "$limit" ]; then
    echo "== $name skipped: ${left}s of the budget left, it may take ${limit}s"
    echo "RESULT error=skipped run=$name" >> "$out/results"
    return
  fi
  run "$name" "$limit" "$@"
}
want_burn=0; [ "${ONLY:-}" != torch ] && [ -x "$bin" ] && want_burn=1
want_torch=0; [ "${ONLY:-}" != burn ] && want_torch=1
cache="$out/kernel-cache"; mkdir -p "$cache"
if [ $want_burn = 1 ]; then
  within burn-gemm "${TIMEOUT_GEMM:-90}" "$bin" gemm --tokens $(( batch * seq ))
  for impl in ours ops; do
    within "attention-$impl" "${TIMEOUT_ATTENTION:-60}" "$bin" attention "$impl" --batch "$batch" --seq "$seq"
  done
  # The operator's setup: CubeCL's PTX + autotune caches and the driver's cache in one directory.
  export CUDA_CACHE_PATH="$cache/nv" CUDA_CACHE_MAXSIZE=4294967296
  within burn-lora "${TIMEOUT_BURN:-240}" "$bin" lora "${common[@]}" --steps "${BURN_STEPS:-3}" --kernel-cache "$cache"
  if [ "${WARM:-1}" = 1 ]; then
    within burn-lora-warm "${TIMEOUT_BURN_WARM:-90}" "$bin" lora "${common[@]}" --steps 1 --kernel-cache "$cache"
    echo "kernel cache: $(du -sh "$cache" | cut -f1)"
  fi
  unset CUDA_CACHE_PATH CUDA_CACHE_MAXSIZE
fi
[ $want_torch = 1 ] && within torch-lora "${TIMEOUT_TORCH:-150}" "$py" -W ignore benches/pytorch_gpu.py lora "${common[@]}" --steps "${TORCH_STEPS:-4}"
[ $want_burn = 1 ] && within burn-qlora "${TIMEOUT_BURN_QLORA:-150}" "$bin" qlora "${common[@]}" --steps "${BURN_QLORA_STEPS:-2}" --kernel-cache "$cache"
[ $want_torch = 1 ] && within torch-qlora "${TIMEOUT_TORCH:-150}" "$py" -W ignore benches/pytorch_gpu.py qlora "${common[@]}" --steps "${TORCH_STEPS:-4}"
[ $want_burn = 1 ] && KAITO_CUBLAS=0 within burn-lora-nocublas "${TIMEOUT_BURN:-240}" "$bin" lora "${common[@]}" --steps 2 --kernel-cache "$cache"

echo
echo "== phi-3-mini shape, batch $batch x $seq, LoRA r=$r, bf16; MFU = 4*N*tokens/s / ${peak} TFLOP/s"
printf '%-6s %-11s %10s %10s %7s %10s %12s %s\n' side method ms/step tokens/s MFU peak_GiB first_step_s notes
while read -r line; do
  get() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<< "$line"; }
  case "$(get side)" in gemm|attention) continue ;; esac
  cublas="$(get cublas)"
  mfu="$(get mfu)"; [ -n "$mfu" ] && mfu="$(awk -v m="$mfu" 'BEGIN{printf "%.1f%%", 100*m}')"
  printf '%-6s %-11s %10s %10s %7s %10s %12s %s\n' "$(get side)" "$(get method)" "$(get ms_per_step)" \
    "$(get tokens_per_s)" "$mfu" "$(get peak_gpu_gib)" "$(get first_step_s)" "$(get run)${cublas:+ cublas=$cublas} $(get error)"
done < "$out/results"
echo
echo "== the base's products alone (bf16, $(( batch * seq )) tokens): our frozen-linear op vs Burn's matmul"
printf '%-22s %9s %8s %9s %8s %12s %s\n' op ours_ms TFLOP/s burn_ms TFLOP/s max_rel_diff cublas
while read -r line; do
  get() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<< "$line"; }
  [ "$(get side)" = gemm ] || continue
  printf '%-22s %9s %8s %9s %8s %12s %s\n' "$(get op)" "$(get ours_ms)" "$(get ours_tflops)" \
    "$(get burn_ms)" "$(get burn_tflops)" "$(get max_rel_diff)" "$(get cublas)"
done < "$out/results"
echo
echo "== causal attention alone (bf16, batch $batch x $seq, 32 heads of 96): forward + backward"
printf '%-6s %11s %10s %9s %16s %15s\n' impl ms_fwd_bwd peak_GiB first_s max_rel_diff_out max_rel_diff_dq
while read -r line; do
  get() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<< "$line"; }
  [ "$(get side)" = attention ] || continue
  printf '%-6s %11s %10s %9s %16s %15s\n' "$(get impl)" "$(get ms_fwd_bwd)" "$(get peak_gpu_gib)" \
    "$(get first_s)" "$(get max_rel_diff_out)" "$(get max_rel_diff_dq)"
done < "$out/results"
echo
cat "$out/results"
