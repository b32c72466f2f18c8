#!/usr/bin/env bash
# README's test command: starts what the tests need, runs the whole test suite, stops it again.
set -euo pipefail
cd "$(dirname "$0")/.."

cleanup() {
  if [ -x .ci/registries.sh ]; then .ci/registries.sh stop || true; fi
}
trap cleanup EXIT

if [ -x scripts/fetch-smollm2.sh ]; then scripts/fetch-smollm2.sh; fi
if [ -x .ci/registries.sh ]; then
  registry_env="$(.ci/registries.sh start)"
  eval "$registry_env"
fi

# Libraries, binaries and integration tests; examples and benches are compiled by clippy above.
cargo test --workspace --lib --bins --tests
