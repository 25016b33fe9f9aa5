#!/usr/bin/env bash
# demo.sh - a guided tour of the cache-aside product service, and an end-to-end smoke test.
#
# It talks to a running service over HTTP, shows what happens in the cache at each step
# (with redis-cli, when it can reach the service's Redis), checks every result and exits
# non-zero at the first step that does not show what it should.
#
# Usage: ./demo.sh [--yes] [--no-redis] [--keep] [BASE_URL]
#   BASE_URL     default: $BASE_URL, else http://localhost:3000
#   --yes, -y    no "press Enter" pauses (also when stdin is not a terminal)
#   --no-redis   do not look into Redis with redis-cli
#   --keep       keep the products the demo created (they are deleted at the end by default)
# Environment: BASE_URL, REDIS_URL or REDIS_ADDR (default localhost:6379), CACHE_PREFIX
#   (default product:), NO_COLOR.
# Exit codes: 0 all steps passed, 1 a check failed, 2 bad usage, 3 curl or jq missing,
#   4 the service does not answer /health.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

# ---------------------------------------------------------------- arguments
BASE_ARG=""
ASSUME_YES=0
REDIS_WANTED=1
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    -y | --yes) ASSUME_YES=1 ;;
    --no-redis) REDIS_WANTED=0 ;;
    --keep) KEEP=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    -*)
      echo "demo.sh: unknown option: $1 (see --help)" >&2
      exit 2
      ;;
    *)
      if [ -n "$BASE_ARG" ]; then
        echo "demo.sh: only one base URL, please (got '$BASE_ARG' and '$1')" >&2
        exit 2
      fi
      BASE_ARG=$1
      ;;
  esac
  shift
done
BASE=${BASE_ARG:-${BASE_URL:-http://localhost:3000}}
BASE=${BASE%/}
PREFIX=${CACHE_PREFIX:-product:}

# ---------------------------------------------------------------- presentation
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-}" != dumb ]; then
  B=$'\033[1m' D=$'\033[2m' G=$'\033[32m' Y=$'\033[33m' C=$'\033[36m' M=$'\033[35m' N=$'\033[0m'
  JQ_COLOR=-C
else
  B='' D='' G='' Y='' C='' M='' N=''
  JQ_COLOR=-M
fi
if [ -t 2 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-}" != dumb ]; then
  ER=$'\033[1;31m' EN=$'\033[0m'
else
  ER='' EN=''
fi
case "${LC_ALL:-${LC_CTYPE:-${LANG:-}}}" in
  *UTF-8* | *utf-8* | *UTF8* | *utf8*) OK_MARK='✓' FAIL_MARK='✗' ARROW='→' ;;
  *) OK_MARK='ok' FAIL_MARK='FAILED' ARROW='->' ;;
esac
INTERACTIVE=0
if [ "$ASSUME_YES" = 0 ] && [ -t 0 ]; then INTERACTIVE=1; fi

TOTAL_STEPS=10
STEP=0
STEP_TITLE="preflight"

say() { printf '%s\n' "$*"; }
step() {
  STEP=$((STEP + 1))
  STEP_TITLE=$1
  printf '\n%s━━ Step %d/%d · %s%s\n' "$B" "$STEP" "$TOTAL_STEPS" "$1" "$N"
}
# One line: what happens in the cache, and why.
cache_says() { printf '%s   cache: %s%s\n' "$C" "$*" "$N"; }
ok() { printf '   %s%s%s %s\n' "$G" "$OK_MARK" "$N" "$*"; }
note() { printf '   %snote:%s %s\n' "$Y" "$N" "$*"; }
fail() {
  {
    printf '\n%s%s Step %d/%d (%s): %s%s\n' "$ER" "$FAIL_MARK" "$STEP" "$TOTAL_STEPS" "$STEP_TITLE" "$*" "$EN"
    if [ -n "${LAST_REQ:-}" ]; then
      printf '   last request: %s -> HTTP %s\n' "$LAST_REQ" "${STATUS:-?}"
      if [ -n "${BODY:-}" ]; then printf '   body: %.600s\n' "$BODY"; fi
    fi
  } >&2
  exit 1
}
pause() {
  if [ "$INTERACTIVE" = 1 ]; then
    read -r -p "${D}   press Enter to continue (Ctrl-C stops)${N}" _ || true
  fi
}

# ---------------------------------------------------------------- prerequisites
missing=0
for tool in curl jq; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "demo.sh needs $tool, which is not installed." >&2
    echo "  Debian/Ubuntu: apt-get install -y $tool    macOS: brew install $tool" >&2
    missing=1
  fi
done
[ "$missing" = 0 ] || exit 3

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cache-demo.XXXXXX")
CREATED=()   # ids of the products this run created and has not deleted
cleanup() {
  local rc=$?
  if [ "$KEEP" = 0 ] && [ "${#CREATED[@]}" -gt 0 ]; then
    local id
    for id in "${CREATED[@]}"; do
      curl -s -o /dev/null --max-time 5 -X DELETE "$BASE/api/v1/products/$id" || true
    done
    if [ "$rc" != 0 ]; then
      echo "   (deleted the products this run had created: ${CREATED[*]})" >&2
    fi
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget() { # id: no longer ours to delete at the end
  local keep=() id
  for id in "${CREATED[@]}"; do [ "$id" = "$1" ] || keep+=("$id"); done
  CREATED=("${keep[@]+"${keep[@]}"}")
}

# ---------------------------------------------------------------- HTTP
# http METHOD PATH [JSON-BODY]: sets STATUS, BODY; headers readable with header NAME.
http() {
  local method=$1 path=$2 data=${3-} shown
  local args=(-sS -X "$method" -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}'
    --max-time 10 -H 'Accept: application/json')
  shown="curl -s"
  [ "$method" = GET ] || shown="$shown -X $method"
  if [ -n "$data" ]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$data")
    shown="$shown -H 'Content-Type: application/json' -d '$data'"
  fi
  LAST_REQ="$method $path"
  case "$path" in
    *[?\&]*) printf "%s   \$ %s '%s'%s\n" "$D" "$shown" "$BASE$path" "$N" ;;
    *) printf '%s   $ %s %s%s\n' "$D" "$shown" "$BASE$path" "$N" ;;
  esac
  : >"$TMP/body"
  if ! STATUS=$(curl "${args[@]}" "$BASE$path" 2>"$TMP/curl.err"); then
    STATUS="none" BODY=""
    fail "no answer from the service: $(tr '\n' ' ' <"$TMP/curl.err")"
  fi
  BODY=$(cat "$TMP/body")
}
header() { # last value of header $1 in the last response, '' if absent
  awk -v n="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" '
    { sub(/\r$/, "") ; i = index($0, ":") }
    i > 0 && tolower(substr($0, 1, i - 1)) == n { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v); found = v }
    END { printf "%s", found }' "$TMP/headers"
}
jf() { jq -r "$1" <<<"$BODY"; }
show() { # pretty-print the last body through an optional jq filter
  jq "$JQ_COLOR" "${1:-.}" <<<"$BODY" | sed 's/^/     /'
}
expect_status() {
  [ "$STATUS" = "$1" ] || fail "expected HTTP $1 from $LAST_REQ, got $STATUS"
  jq -e . >/dev/null 2>&1 <<<"$BODY" || fail "the body of $LAST_REQ is not JSON"
}
expect() { # jq-filter expected what
  local got
  got=$(jq -r "$1" <<<"$BODY" 2>/dev/null) || got="(no such field)"
  [ "$got" = "$2" ] || fail "$3: expected $2, got $got"
}
expect_x_cache() {
  local got
  got=$(header X-Cache)
  [ "$got" = "$1" ] || fail "expected header X-Cache: $1 on $LAST_REQ, got '${got:-none}'"
}
# A read that must be a miss (false/MISS) or a hit (true/HIT); prints one line about it.
expect_read() { # true|false label
  local want=$1 label=$2 xc=MISS word="miss, read from SQLite and stored in the cache"
  if [ "$want" = true ]; then xc=HIT word="hit, answered from the cache"; fi
  expect .from_cache "$want" "$label: from_cache"
  expect_x_cache "$xc"
  DURATION=$(jf .duration_ms)
  [[ "$DURATION" =~ ^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]] || fail "$label: duration_ms is not a number: $DURATION"
  DURATION=$(awk -v d="$DURATION" 'BEGIN { printf "%.3f", d }')
  ok "$label: ${B}from_cache=$want${N}, X-Cache: $xc, duration_ms=$DURATION ($word)"
}
expect_stats() { # hits misses (after the body of /cache/stats is loaded)
  local hits=$1 misses=$2 total rate
  total=$((hits + misses))
  rate=$(jq -nr --argjson h "$hits" --argjson t "$total" 'if $t == 0 then 0 else $h / $t end')
  expect .cache_stats.hits "$hits" "cache_stats.hits"
  expect .cache_stats.misses "$misses" "cache_stats.misses"
  expect .cache_stats.total_gets "$total" "cache_stats.total_gets"
  jq -e --argjson r "$rate" '(.cache_stats.hit_rate - $r) | . < 1e-9 and . > -1e-9' >/dev/null <<<"$BODY" ||
    fail "cache_stats.hit_rate: expected $rate, got $(jf .cache_stats.hit_rate)"
  expect .cache_stats.errors 0 "cache_stats.errors (a cache operation failed)"
  ok "stats: hits=$hits misses=$misses total_gets=$total hit_rate=$(awk -v r="$rate" 'BEGIN { printf "%.3g", r }') errors=0"
}
create_product() { # json -> sets NEW_ID
  http POST /api/v1/products "$1"
  expect_status 201
  NEW_ID=$(jf .product.id)
  jq -e '.product.id | type == "number" and . == floor and . > 0' >/dev/null <<<"$BODY" ||
    fail "product.id is not a positive integer: $NEW_ID"
  CREATED+=("$NEW_ID")
  expect .message "Product created successfully" "message"
  expect .product.name "$(jq -r .name <<<"$1")" "product.name"
  local loc
  loc=$(header Location)
  case "$loc" in
    /api/v1/products/"$NEW_ID" | http*://*/api/v1/products/"$NEW_ID") ;;
    *) fail "expected header Location: /api/v1/products/$NEW_ID, got '${loc:-none}'" ;;
  esac
  ok "201 Created, id $NEW_ID, Location: $loc"
}

# ---------------------------------------------------------------- the cache, seen with redis-cli
REDIS_ON=0
RCLI=(redis-cli)
if command -v timeout >/dev/null 2>&1; then RCLI=(timeout 3 redis-cli); fi
setup_redis_view() {
  if [ "$REDIS_WANTED" = 0 ]; then
    REDIS_NOTE="cache views off (--no-redis): the API's own word (from_cache, X-Cache) only"
    return
  fi
  if ! command -v redis-cli >/dev/null 2>&1; then
    REDIS_NOTE="redis-cli not found (apt-get install -y redis-tools): skipping the views of Redis itself"
    return
  fi
  if [ -n "${REDIS_URL:-}" ]; then
    RCLI+=(--no-auth-warning -u "$REDIS_URL")
    REDIS_DESC=$(sed -E 's#//[^@/]*@#//***@#' <<<"$REDIS_URL")
  else
    local addr=${REDIS_ADDR:-localhost:6379} host port
    host=${addr%:*} port=${addr##*:}
    if [ "$host" = "$addr" ]; then port=6379; fi
    host=${host#[} host=${host%]}
    RCLI+=(-h "$host" -p "$port")
    REDIS_DESC="$host:$port"
  fi
  if [ "$("${RCLI[@]}" PING 2>/dev/null || true)" != PONG ]; then
    REDIS_NOTE="redis-cli cannot reach $REDIS_DESC (set REDIS_URL or REDIS_ADDR to the service's Redis): skipping the views of Redis itself"
    return
  fi
  REDIS_ON=1
  REDIS_NOTE="looking into Redis at $REDIS_DESC with: redis-cli --scan --pattern '${PREFIX}*' and PTTL (only ${PREFIX}id: and ${PREFIX}list: keys are shown)"
}
rcli() { "${RCLI[@]}" "$@" 2>/dev/null; }
redis_off() {
  REDIS_ON=0
  note "$1; no more views of Redis"
}
# redis_view [KEY LABEL]...: the id:/list: keys with their remaining lifetime; each KEY named
# is marked with its LABEL, or reported as absent.
redis_view() {
  [ "$REDIS_ON" = 1 ] || return 0
  local pattern keys k ms count shown=0 max=12 mark want
  # shellcheck disable=SC2001 # escape glob characters of the prefix for SCAN MATCH
  pattern="$(sed 's/[][*?\\]/\\&/g' <<<"$PREFIX")*"
  if ! keys=$(rcli --scan --pattern "$pattern"); then
    redis_off "redis-cli stopped answering"
    return 0
  fi
  keys=$(awk -v p="$PREFIX" 'index($0, p "id:") == 1 || index($0, p "list:") == 1' <<<"$keys" | sort -V)
  count=$(grep -c . <<<"$keys" || true)
  printf '%s   redis: %d key(s)%s\n' "$M" "$count" "$N"
  while IFS= read -r k; do
    [ -n "$k" ] || continue
    mark=""
    set -- "${WATCH[@]+"${WATCH[@]}"}"
    while [ $# -ge 2 ]; do
      if [ "$1" = "$k" ]; then mark="  $ARROW $2"; fi
      shift 2
    done
    if [ "$shown" -ge "$max" ] && [ -z "$mark" ]; then continue; fi
    shown=$((shown + 1))
    ms=$(rcli PTTL "$k" || echo "?")
    case "$ms" in
      -1) ms="no expiry!" ;;
      -2) ms="just expired" ;;
      '' | *[!0-9]*) ms="TTL ?" ;;
      *) ms=$(awk -v m="$ms" 'BEGIN { printf "TTL %.1fs", m / 1000 }') ;;
    esac
    printf '%s     %-34s %s%s%s\n' "$M" "$k" "$ms" "$mark" "$N"
  done <<<"$keys"
  if [ "$count" -gt "$shown" ]; then printf '%s     ... and %d more%s\n' "$M" "$((count - shown))" "$N"; fi
  set -- "${WATCH[@]+"${WATCH[@]}"}"
  while [ $# -ge 2 ]; do
    want=$1
    shift 2
    if ! grep -qxF -- "$want" <<<"$keys"; then
      printf '%s     %-34s %s%s\n' "$M" "$want" "(not in the cache)" "$N"
    fi
  done
}
view() { # KEY LABEL pairs to watch, then show
  WATCH=("$@")
  redis_view
}

# ---------------------------------------------------------------- preflight
say "${B}Cache-aside demo${N} against ${B}$BASE${N}"
if ! curl -s -o "$TMP/health" --max-time 5 "$BASE/health" 2>/dev/null; then
  {
    echo
    echo "${ER}The service does not answer at $BASE/health.${EN}"
    echo "Start it first, in another terminal, from the project folder:"
    echo
    echo "    npm ci && npm start"
    echo
    echo "(it wants Redis on localhost:6379, or REDIS_URL/REDIS_ADDR; 'npm run demo' starts"
    echo " Redis, the service and this demo together.) Or pass the service's URL: ./demo.sh http://host:port"
  } >&2
  exit 4
fi
setup_redis_view
say "${D}$REDIS_NOTE${N}"
say "Watch it live in a browser: ${B}$BASE/dashboard${N}"
say "${D}(each step's requests appear in its recent-requests table; the counters, hit rate and request rate follow)${N}"
RUN=$(date +%H%M%S)-$$

# ---------------------------------------------------------------- the tour
step "health"
cache_says "the service checks SQLite and Redis; the demo needs both up to show caching"
http GET /health
expect_status 200
show
expect .checks.database up "checks.database"
if [ "$(jf .checks.cache)" != up ]; then
  fail "the service reports its cache down (checks.cache=$(jf .checks.cache)): start Redis (redis-server) or point REDIS_URL/REDIS_ADDR at one, then run the demo again"
fi
expect .status healthy "status"
ok "database up, cache up"
pause

step "reset the statistics"
cache_says "only the hit/miss counters go to zero, so the numbers below are this run's alone; cached entries stay"
http POST /api/v1/cache/stats/reset
expect_status 200
show '.cache_stats'
expect .cache_stats.hits 0 "cache_stats.hits after reset"
expect .cache_stats.misses 0 "cache_stats.misses after reset"
ok "counters at zero"
pause

step "create three products"
cache_says "each write goes to SQLite first, then every ${PREFIX}list:* key is dropped (pages that may now be wrong); nothing is cached for a new id yet"
create_product "{\"name\":\"Demo Laptop $RUN\",\"description\":\"High-performance laptop\",\"price\":999.99,\"stock\":50,\"category\":\"Electronics\"}"
show '.product'
A=$NEW_ID
create_product "{\"name\":\"Demo Mouse $RUN\",\"description\":\"Wireless mouse\",\"price\":24.5,\"stock\":200,\"category\":\"Accessories\"}"
B_ID=$NEW_ID
create_product "{\"name\":\"Demo Keyboard $RUN\",\"price\":79,\"category\":\"Accessories\"}"
C_ID=$NEW_ID
ok "created products $A, $B_ID and $C_ID"
KEY_A="${PREFIX}id:$A"
view "$KEY_A" "the laptop"
pause

step "read product $A twice"
cache_says "first read: $KEY_A is absent (a miss), so the service reads SQLite and stores it with a TTL; second read: a hit"
http GET "/api/v1/products/$A"
expect_status 200
expect .product.id "$A" "product.id"
expect_read false "1st read"
MISS_MS=$DURATION
if [ "$REDIS_ON" = 1 ] && [ "$(rcli EXISTS "$KEY_A")" != 1 ]; then
  redis_off "redis-cli reaches $REDIS_DESC but $KEY_A is not there, so the service uses another Redis (or CACHE_BACKEND=memory)"
fi
view "$KEY_A" "stored by the miss"
http GET "/api/v1/products/$A"
expect_status 200
show
expect .product.id "$A" "product.id"
expect .product.price 999.99 "product.price"
expect_read true "2nd read"
ok "the miss took ${MISS_MS} ms, the hit ${DURATION} ms"
view "$KEY_A" "same entry, its TTL running down"
pause

step "statistics: one miss, one hit"
cache_says "the service counted each read: the first did not find its key, the second did"
http GET /api/v1/cache/stats
expect_status 200
show '.cache_stats'
expect_stats 1 1
pause

step "update product $A (invalidation)"
cache_says "the write goes to SQLite, then $KEY_A and every list key are deleted, so no reader can get the old price"
http PUT "/api/v1/products/$A" '{"price":899.99,"stock":45}'
expect_status 200
show '{message, product: (.product | {id, name, price, stock, updated_at})}'
expect .product.id "$A" "product.id"
expect .product.price 899.99 "product.price after update"
expect .product.stock 45 "product.stock after update"
ok "updated: price 999.99 $ARROW 899.99"
view "$KEY_A" "should be gone"
cache_says "the next read misses and brings the new value back into the cache"
http GET "/api/v1/products/$A"
expect_status 200
show '{product: (.product | {id, price, stock}), from_cache, duration_ms}'
expect .product.price 899.99 "product.price on the read after the update"
expect_read false "read after update"
view "$KEY_A" "cached again, fresh"
http GET /api/v1/cache/stats
expect_status 200
expect_stats 1 2
pause

step "list a page twice"
cache_says "a one-item page first, only to learn the total (it is cached too, as ${PREFIX}list:0:1)"
http GET "/api/v1/products?offset=0&limit=1"
expect_status 200
TOTAL=$(jf .total)
if ! [[ "$TOTAL" =~ ^[0-9]+$ ]] || [ "$TOTAL" -lt 3 ]; then
  fail "total should count at least our 3 products, got $TOTAL"
fi
expect_read false "probe read"
LIMIT=5
OFFSET=$((TOTAL > LIMIT ? TOTAL - LIMIT : 0))
PAGE="/api/v1/products?offset=$OFFSET&limit=$LIMIT"
KEY_PAGE="${PREFIX}list:$OFFSET:$LIMIT"
cache_says "now the last page (offset $OFFSET, limit $LIMIT), which holds our newest products: a miss stores it as $KEY_PAGE, then a hit"
http GET "$PAGE"
expect_status 200
expect .offset "$OFFSET" "offset"
expect .limit "$LIMIT" "limit"
expect_read false "1st list"
http GET "$PAGE"
expect_status 200
show '{total, offset, limit, from_cache, duration_ms, products: [.products[] | "#\(.id) \(.name) \(.price)"]}'
expect_read true "2nd list"
view "$KEY_PAGE" "the page" "${PREFIX}list:0:1" "the probe" "$KEY_A" "product $A"
pause

step "create a product: the list keys go"
cache_says "a new product can change any page and any total, so the create drops every ${PREFIX}list:* key; id keys stay"
create_product "{\"name\":\"Demo Monitor $RUN\",\"description\":\"27-inch\",\"price\":319,\"stock\":12,\"category\":\"Electronics\"}"
D_ID=$NEW_ID
view "$KEY_PAGE" "the page" "${PREFIX}list:0:1" "the probe" "$KEY_A" "product $A, still cached"
http GET "$PAGE"
expect_status 200
show '{total, offset, limit, from_cache, duration_ms}'
expect_read false "same page again"
ok "the page was read again from SQLite: total is now $(jf .total)"
pause

step "delete product $A, then read it"
cache_says "the row goes from SQLite, then $KEY_A and every list key are deleted; a read afterwards finds nothing anywhere"
http DELETE "/api/v1/products/$A"
expect_status 200
show
expect .message "Product deleted successfully, cache invalidated" "message"
forget "$A"
ok "deleted"
view "$KEY_A" "should be gone"
http GET "/api/v1/products/$A"
expect_status 404
show
expect .error not_found "error"
ok "404 not_found: the deleted product is not served from a stale cache entry"
http DELETE "/api/v1/products/$A"
expect_status 404
expect .error not_found "error"
ok "deleting it again: 404 not_found"
pause

step "final statistics, tidy up, reset"
cache_says "8 reads in all: product $A missed 3 times (first read, after the update, after the delete) and hit once; the probe missed; the page missed, hit, missed"
http GET /api/v1/cache/stats
expect_status 200
show '.cache_stats'
expect_stats 2 6
if [ "$KEEP" = 0 ]; then
  for id in "$B_ID" "$C_ID" "$D_ID"; do
    http DELETE "/api/v1/products/$id"
    expect_status 200
    forget "$id"
  done
  ok "deleted the other demo products ($B_ID, $C_ID, $D_ID); --keep keeps them"
else
  note "kept products $B_ID, $C_ID and $D_ID (--keep)"
fi
http POST /api/v1/cache/stats/reset
expect_status 200
show '.cache_stats'
expect .message "Cache statistics reset" "message"
expect '[.cache_stats.hits, .cache_stats.misses, .cache_stats.sets, .cache_stats.deletes, .cache_stats.errors, .cache_stats.total_gets] | map(tostring) | join(",")' "0,0,0,0,0,0" "counters after reset"
ok "statistics reset"
view

printf '\n%s%s all %d steps passed%s\n' "$G$B" "$OK_MARK" "$TOTAL_STEPS" "$N"
