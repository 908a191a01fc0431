#!/usr/bin/env bash
# A/B of two builds of cmd/pop under one flash crowd: the working tree's
# and BASE's, side by side on CPU 0, each serving half of the players of
# one cmd/loadtest (which spreads them over its targets), so that both
# see the same machine at the same moment. A change of a few percent of
# the PoP's CPU shows here where it drowns in the round-to-round noise of
# run.sh (±6% here). Rounds alternate the sides; BASE=HEAD against a
# clean tree is the control (expect 1.00). BASE=nginx puts run.sh's
# nginx (one worker, start_nginx_pop) on the base side instead: the
# PoP's CPU against nginx's under the same crowd at the same moment.
#
#   bench/flash/ab.sh                      # the tree against HEAD, 3 rounds
#   BASE=1e27c22 ROUNDS=4 bench/flash/ab.sh
#   BASE=nginx PLAYERS=600 ROUNDS=4 bench/flash/ab.sh   # 3000 on each side
set -euo pipefail

BASE=${BASE:-HEAD}
PLAYERS=${PLAYERS:-300}
FACTOR=${FACTOR:-10}
ROUNDS=${ROUNDS:-3}
WAIT_MAX=${WAIT_MAX:-1200}
for v in PLAYERS FACTOR ROUNDS WAIT_MAX; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "ab.sh: $v must be a positive whole number, not '${!v}'" >&2; exit 2; }
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/bench/out
RUN=$OUT/flash-ab
RESULTS=$OUT/flash-ab-results.txt
# shellcheck source=../lib.sh
source "$ROOT/bench/lib.sh"
OTHER_BENCH='bench/ingest/run\.sh|bench/pop/run\.sh|bench/flash/run\.sh|bench/out/origin-bench'

PIDS=()
SRC=""
NGINX_CACHE=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  ((${#PIDS[@]} == 0)) || stop "${PIDS[@]}"
  [[ -z $SRC ]] || rm -rf "$SRC"
  [[ -z $NGINX_CACHE ]] || rm -rf "$NGINX_CACHE"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$OUT"
exec 9>"$OUT/flash-run.lock" # one flash benchmark at a time
flock -w "$WAIT_MAX" 9 || die "another flash benchmark still runs after ${WAIT_MAX}s"
: >"$RESULTS"
install_missing jq:jq ss:iproute2 taskset:util-linux
wait_for_quiet
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(nproc) >= 2)) || die "needs 2 cores: the PoPs on one, the origin and load generator on the other"

rm -rf "$RUN"
mkdir -p "$RUN/base" "$RUN/tree"
if [[ $BASE == nginx ]]; then
  install_missing nginx:nginx
  base=nginx
  log "building cmd/pop, cmd/origin and cmd/loadtest in the working tree"
else
  base=$(cd "$ROOT" && git rev-parse --short "$BASE") || die "no such revision: $BASE"
  log "building cmd/pop at $base and in the working tree, cmd/origin and cmd/loadtest in the tree"
  SRC=$(mktemp -d)
  (cd "$ROOT" && git archive "$base" | tar -x -C "$SRC") || die "git archive $base failed"
  (cd "$SRC" && go build -o "$RUN/base/pop" ./cmd/pop) || die "build of cmd/pop at $base failed"
fi
for b in pop origin loadtest; do
  (cd "$ROOT" && go build -o "$RUN/tree/$b" "./cmd/$b") || die "build of cmd/$b failed"
done
dirty=$(cd "$ROOT" && git status --porcelain -uall 2>/dev/null | wc -l)

# start_side SIDE PORT ROUND ORIGIN_PORT starts one side's PoP (base or
# tree; nginx for base=nginx) on CPU 0, in front of the origin, and sets
# SIDE_PID.
start_side() {
  local side=$1 port=$2 round=$3 origin_port=$4
  if [[ $side == base && $base == nginx ]]; then
    start_nginx_pop "$RUN/nginx-r$round" "$origin_port" 0 "$port"
    SIDE_PID=$NGINX_PID
    return
  fi
  pinned 0 "$RUN/$side/pop" -http "127.0.0.1:$port" -origin "http://127.0.0.1:$origin_port" >"$RUN/$side-r$round.log" 2>&1 &
  SIDE_PID=$!
  PIDS+=("$SIDE_PID")
  wait_listening "$SIDE_PID" "$port" "PoP ($side)"
}

report "flash A/B of cmd/pop, $(date -u +%Y-%m-%dT%H:%M:%SZ): tree ($(cd "$ROOT" && git rev-parse --short HEAD), $dirty files changed) against $base"
report "  $PLAYERS -> $((PLAYERS * FACTOR)) players over 60 s, half on each PoP; both PoPs on CPU 0, origin and load generator on CPU 1"
report "$(printf '%-6s %-10s %10s %10s %8s' round 'first port' 'base CPU-s' 'tree CPU-s' 'tree/base')"
ratios=()
for ((r = 1; r <= ROUNDS; r++)); do
  rtmp=$(free_port) http=$(free_port) pa=$(free_port) pb=$(free_port)
  pinned 1 "$RUN/tree/origin" -rtmp "127.0.0.1:$rtmp" -http "127.0.0.1:$http" -transcode=false >"$RUN/origin-r$r.log" 2>&1 &
  origin=$!
  PIDS=("$origin")
  wait_listening "$origin" "$http" origin
  wait_listening "$origin" "$rtmp" "origin (RTMP)"
  first=base second=tree
  ((r % 2)) || { first=tree second=base; }
  start_side "$first" "$pa" "$r" "$http"
  popa=$SIDE_PID
  start_side "$second" "$pb" "$r" "$http"
  popb=$SIDE_PID
  log "round $r: $first on :$pa, $second on :$pb"
  (pinned 1 "$RUN/tree/loadtest" -targets "http://127.0.0.1:$pa,http://127.0.0.1:$pb" -broadcasters 1 \
    -rtmp "rtmp://127.0.0.1:$rtmp/live/" -stream-prefix "ab-r$r-" -scenario flash -players "$PLAYERS" \
    -flash-after 20s -flash-within 10s -flash-factor "$FACTOR" -duration 60s -dash 0.5 -step 5 \
    -json "$RUN/loadtest-r$r.json" >"$RUN/loadtest-r$r.log" 2>&1) || die "loadtest failed in round $r (see $RUN)"
  ca=$(tree_secs "$popa") cb=$(tree_secs "$popb") # nginx: master and worker
  stop "${PIDS[@]}"
  PIDS=()
  [[ -z $NGINX_CACHE ]] || rm -rf "$NGINX_CACHE"
  NGINX_CACHE=""
  if [[ $first == base ]]; then cbase=$ca ctree=$cb; else cbase=$cb ctree=$ca; fi
  ratio=$(calc "$ctree / $cbase")
  ratios+=("$ratio")
  report "$(printf '%-6s %-10s %10s %10s %8.3f' "$r" "$first" "$cbase" "$ctree" "$ratio")"
  jq -e '.stalls == 0 and .error_count == 0' "$RUN/loadtest-r$r.json" >/dev/null ||
    report "  round $r: players stalled or met errors: $(jq -c '{stalls, error_count}' "$RUN/loadtest-r$r.json")"
done
report "tree/base CPU: mean $(printf '%s\n' "${ratios[@]}" | awk '{ s += $1 } END { printf "%.3f", s / NR }') over $ROUNDS rounds"
report "reproduce: BASE=$base PLAYERS=$PLAYERS FACTOR=$FACTOR ROUNDS=$ROUNDS bench/flash/ab.sh"
