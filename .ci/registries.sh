#!/usr/bin/env bash
# Local OCI registries for kaito-backends' integration tests (tests/registry.rs).
#
#   source <(.ci/registries.sh start)   # installs if missing, starts, prints `export KAITO_TEST_...`
#   .ci/registries.sh stop              # kills exactly the processes `start` recorded
#
# start: installs Debian's docker-registry, apache2-utils (htpasswd) and skopeo when missing,
# starts two registries on 127.0.0.1 — anonymous on $KAITO_REGISTRY_PORT (5000) and htpasswd-auth
# on $KAITO_AUTH_REGISTRY_PORT (5001) — with storage in a temporary directory, waits until both
# answer /v2/, and prints on stdout the variables the tests read:
#   KAITO_TEST_REGISTRY, KAITO_TEST_AUTH_REGISTRY, KAITO_TEST_AUTH_USER, KAITO_TEST_AUTH_PASSWORD
# Everything else goes to stderr. State (PIDs, configs, logs) lives in $KAITO_REGISTRY_STATE
# (default /tmp/kaito-registries).
set -euo pipefail

STATE="${KAITO_REGISTRY_STATE:-/tmp/kaito-registries}"
PORT="${KAITO_REGISTRY_PORT:-5000}"
AUTH_PORT="${KAITO_AUTH_REGISTRY_PORT:-5001}"
USER_NAME=kaito

log() { echo "registries: $*" >&2; }

install_missing() {
  local need=()
  command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
  command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
  command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  [ ${#need[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  log "installing ${need[*]}"
  $sudo apt-get update >&2
  # The package's postinst tries to start a system service; policy-rc.d may block it (fine).
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${need[@]}" >&2
}

write_config() { # dir port [auth]
  local dir=$1 port=$2 auth=${3:-}
  mkdir -p "$dir/data"
  {
    echo "version: 0.1"
    echo "log: {level: warn}"
    echo "storage:"
    echo "  filesystem: {rootdirectory: $dir/data}"
    echo "  delete: {enabled: true}"
    echo "http: {addr: 127.0.0.1:$port}"
    if [ -n "$auth" ]; then
      echo "auth:"
      echo "  htpasswd: {realm: basic-realm, path: $dir/htpasswd}"
    fi
  } >"$dir/config.yml"
}

wait_ready() { # port
  local i
  for i in $(seq 1 100); do
    # 200 (anonymous) or 401 (auth) both mean the registry is serving.
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/v2/" || true)
    if [ "$code" = 200 ] || [ "$code" = 401 ]; then return 0; fi
    sleep 0.2
  done
  log "registry on port $1 did not answer; log:"
  cat "$STATE"/*/registry.log >&2 || true
  return 1
}

port_busy() { curl -s -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null; }

start() {
  install_missing
  if [ -f "$STATE/pids" ]; then
    log "already started (state in $STATE); stop first"
    cat "$STATE/env"
    return 0
  fi
  for p in "$PORT" "$AUTH_PORT"; do
    if port_busy "$p"; then log "port $p is already in use"; exit 1; fi
  done
  mkdir -p "$STATE"
  local password
  password="$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)"
  write_config "$STATE/anon" "$PORT"
  write_config "$STATE/auth" "$AUTH_PORT" auth
  htpasswd -Bbn "$USER_NAME" "$password" >"$STATE/auth/htpasswd"
  : >"$STATE/pids"
  for name in anon auth; do
    docker-registry serve "$STATE/$name/config.yml" >"$STATE/$name/registry.log" 2>&1 &
    echo $! >>"$STATE/pids"
  done
  wait_ready "$PORT"
  wait_ready "$AUTH_PORT"
  cat >"$STATE/env" <<ENV
export KAITO_TEST_REGISTRY=127.0.0.1:$PORT
export KAITO_TEST_AUTH_REGISTRY=127.0.0.1:$AUTH_PORT
export KAITO_TEST_AUTH_USER=$USER_NAME
export KAITO_TEST_AUTH_PASSWORD=$password
ENV
  log "started: anonymous 127.0.0.1:$PORT, htpasswd 127.0.0.1:$AUTH_PORT (pids $(tr '\n' ' ' <"$STATE/pids"))"
  cat "$STATE/env"
}

stop() {
  [ -f "$STATE/pids" ] || { log "nothing to stop"; return 0; }
  local pid
  while read -r pid; do
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done <"$STATE/pids"
  rm -rf "$STATE"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
