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

# The CPU backend on OpenBLAS (`--features blas`, docs/benchmarks.md): the runtime's tests again
# (logits against transformers, training, resume, SmolLM2's reference generation), so the faster
# matmuls are shown to give the same answers. Needs the system library (Debian: libopenblas-dev);
# CI installs it (.ci/run) and must not skip this.
# The linker finds OpenBLAS where Debian's libopenblas-dev puts it (or wherever ldconfig knows).
has_openblas() {
  compgen -G '/usr/lib/*/libopenblas.so' >/dev/null || [ -e /usr/lib/libopenblas.so ] ||
    (set +o pipefail; PATH="$PATH:/sbin:/usr/sbin" ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so ')
}
# `--workspace` keeps the first pass's feature resolution (`-p kaito-backends` alone resolves kube,
# hyper and rustls with fewer features and rebuilds them all), so only ndarray, burn-ndarray, burn
# and kaito-backends compile again.
if has_openblas; then
  cargo test --workspace --features kaito-backends/blas --test runtime
elif [ "${CI:-}" = true ]; then
  echo "CI: libopenblas-dev is missing, the OpenBLAS test pass cannot run" >&2
  exit 1
else
  echo "== skipped the OpenBLAS test pass: no libopenblas.so (Debian: apt-get install libopenblas-dev)"
fi
