#!/usr/bin/env bash
# scripts/demo-run.sh - `npm run demo`: everything the demo needs, started and stopped for you.
#
# Starts a throwaway redis-server on a free port in a temp folder (when redis-server is
# installed; otherwise the service runs with CACHE_BACKEND=memory), builds and starts the
# service on a free port with its SQLite file in the same temp folder, waits for /health,
# runs ./demo.sh against it with the arguments given here (e.g. --yes), and stops it all on exit.
#
#   npm run demo              interactive tour
#   npm run demo -- --yes     straight through (CI smoke test)
# Environment: DEMO_SKIP_BUILD=1 skips `npm run build`; CACHE_BACKEND=memory skips Redis;
#   CACHE_TTL and CACHE_PREFIX are passed on to the service.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cache-demo-run.XXXXXX")
REDIS_PID=""
APP_PID=""
DEMO_PID=""

# (the functions below run from the EXIT trap; shellcheck 0.9 wrongly calls them unreachable)
# shellcheck disable=SC2317
stop() { # pid name: SIGTERM, then SIGKILL after 10 s
  local pid=$1
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then return 0; fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "demo-run: $2 (pid $pid) did not stop within 10 s, killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop "$DEMO_PID" "demo.sh"
  stop "$APP_PID" "the service"
  stop "$REDIS_PID" "redis-server"
  if [ "$rc" != 0 ] && [ -s "$TMP/service.log" ]; then
    echo "demo-run: last lines of the service's log:" >&2
    tail -n 30 "$TMP/service.log" | sed 's/^/  | /' >&2
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
port_open() { # port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

for tool in node npm curl jq; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "demo-run: $tool is needed (Debian/Ubuntu: apt-get install -y $tool)" >&2
    exit 3
  fi
done

if [ "${DEMO_SKIP_BUILD:-0}" != 1 ]; then
  echo "demo-run: building (npm run build)..."
  if ! npm run build >"$TMP/build.log" 2>&1; then
    cat "$TMP/build.log" >&2
    echo "demo-run: the build failed (did you run npm ci?)" >&2
    exit 1
  fi
fi
[ -f dist/main.js ] || {
  echo "demo-run: dist/main.js is missing after the build" >&2
  exit 1
}

APP_ENV=(HTTP_PORT="$(free_port)" DB_PATH="$TMP/products.db"
  CACHE_TTL="${CACHE_TTL:-5m}" CACHE_PREFIX="${CACHE_PREFIX:-product:}")
DEMO_ENV=(CACHE_PREFIX="${CACHE_PREFIX:-product:}")
DEMO_ARGS=()

if [ "${CACHE_BACKEND:-redis}" != memory ] && command -v redis-server >/dev/null 2>&1; then
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly no \
    --daemonize no --loglevel warning >"$TMP/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 1 50); do
    port_open "$REDIS_PORT" && break
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.1
  done
  if ! port_open "$REDIS_PORT"; then
    cat "$TMP/redis.log" >&2
    echo "demo-run: redis-server did not start" >&2
    exit 1
  fi
  echo "demo-run: redis-server on 127.0.0.1:$REDIS_PORT (temporary, no persistence)"
  APP_ENV+=(CACHE_BACKEND=redis REDIS_URL="redis://127.0.0.1:$REDIS_PORT")
  DEMO_ENV+=(REDIS_URL="redis://127.0.0.1:$REDIS_PORT")
else
  if [ "${CACHE_BACKEND:-redis}" = memory ]; then
    echo "demo-run: CACHE_BACKEND=memory: the service caches in its own memory, no Redis"
  else
    echo "demo-run: redis-server is not installed (Debian/Ubuntu: apt-get install -y redis-server);"
    echo "          running the service with CACHE_BACKEND=memory instead: same behaviour, no Redis to look into"
  fi
  APP_ENV+=(CACHE_BACKEND=memory)
  DEMO_ARGS+=(--no-redis)
fi

# Start from a clean environment for the variables the service reads, so nothing from the
# caller's shell (a REDIS_ADDR, an HTTP_PORT) points it elsewhere.
env -u REDIS_URL -u REDIS_ADDR -u HTTP_PORT -u DB_PATH -u CACHE_BACKEND \
  "${APP_ENV[@]}" node dist/main.js >"$TMP/service.log" 2>&1 &
APP_PID=$!
BASE="http://127.0.0.1:${APP_ENV[0]#HTTP_PORT=}"

for _ in $(seq 1 150); do
  if curl -fs -o /dev/null --max-time 2 "$BASE/health"; then break; fi
  if ! kill -0 "$APP_PID" 2>/dev/null; then
    echo "demo-run: the service exited before answering /health" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fs -o /dev/null --max-time 2 "$BASE/health" || {
  echo "demo-run: the service did not answer $BASE/health within 30 s" >&2
  exit 1
}
echo "demo-run: service on $BASE (database $TMP/products.db, log $TMP/service.log)"

# In the background (stdin passed on explicitly, for its pauses) so that a SIGTERM to this
# script is handled at once rather than after the demo ends.
env -u REDIS_URL -u REDIS_ADDR "${DEMO_ENV[@]}" ./demo.sh "${DEMO_ARGS[@]+"${DEMO_ARGS[@]}"}" "$@" "$BASE" <&0 &
DEMO_PID=$!
rc=0
wait "$DEMO_PID" || rc=$?
DEMO_PID=""
exit "$rc"
