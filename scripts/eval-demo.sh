#!/usr/bin/env bash
# Did the README's fine-tune take? Serves SmolLM2 with the adapter `scripts/tune-local.sh` wrote
# and asks every question of examples/fine-tuning/eval_questions.jsonl twice, greedy, through the
# OpenAI route: once to the base model (`smollm2:base`), once with the adapter (`facts`). Prints
# each answer and how many held the expected keyword, split into questions asked in training and
# held-out phrasings. Exit status 0 when the adapter beats the base on both splits.
#
#   scripts/eval-demo.sh [ADAPTER_DIR]     (default .kaito/adapters/smollm2-facts)
set -euo pipefail
cd "$(dirname "$0")/.."
ADAPTER="${1:-.kaito/adapters/smollm2-facts}"
PORT="${KAITO_EVAL_PORT:-5077}"
[ -f "$ADAPTER/adapter_config.json" ] || { echo "no adapter in $ADAPTER: run scripts/tune-local.sh first" >&2; exit 1; }
scripts/fetch-smollm2.sh >/dev/null
MODEL="${KAITO_SMOLLM2_GGUF:-.cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}"
cargo build -q -p kaito-operator --bin kaito
target/debug/kaito serve --model "$MODEL" --served-model-name smollm2 \
  --adapter "facts=$ADAPTER" --listen "127.0.0.1:$PORT" >/tmp/kaito-eval-serve.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "127.0.0.1:$PORT/health" >/dev/null && break
  sleep 1
done
python3 - "$PORT" <<'EOF'
import json, sys, urllib.request

port = sys.argv[1]

def ask(model, question):
    body = json.dumps({"model": model, "temperature": 0, "max_tokens": 40,
                       "messages": [{"role": "user", "content": question}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", body,
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.load(r)["choices"][0]["message"]["content"].strip()

score = {}
for line in open("examples/fine-tuning/eval_questions.jsonl"):
    q = json.loads(line)
    split = "training" if q["in_training"] else "held-out"
    for model in ("smollm2:base", "facts"):
        answer = ask(model, q["question"])
        ok = q["expected"].lower() in answer.lower()
        hits, total = score.get((model, split), (0, 0))
        score[(model, split)] = (hits + ok, total + 1)
        print(f"[{model:12} {split:8} {'ok ' if ok else 'no '}] {q['question']}\n    -> {answer}")
print()
better = True
for split in ("training", "held-out"):
    b, t = score[("smollm2:base", split)]
    a, _ = score[("facts", split)]
    print(f"{split:8}: base {b}/{t}, adapter {a}/{t}")
    better &= a > b
sys.exit(0 if better else 1)
EOF
