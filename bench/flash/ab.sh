#!/usr/bin/env bash
# A/B of two builds of cmd/pop under one flash crowd: the working tree's
# and BASE's, side by side on CPU 0, each serving half of the players of
# one cmd/loadtest (which spreads them over its targets), so that both
# see the same machine at the same moment. A change of a few percent of
# the PoP's CPU shows here where it drowns in the round-to-round noise of
# run.sh (±6% here). Rounds alternate the sides; BASE=HEAD against a
# clean tree is the control (expect 1.00).
#
#   bench/flash/ab.sh                      # the tree against HEAD, 3 rounds
#   BASE=1e27c22 ROUNDS=4 bench/flash/ab.sh
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
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  ((${#PIDS[@]} == 0)) || stop "${PIDS[@]}"
  [[ -z $SRC ]] || rm -rf "$SRC"
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
base=$(cd "$ROOT" && git rev-parse --short "$BASE") || die "no such revision: $BASE"
log "building cmd/pop at $base and in the working tree, cmd/origin and cmd/loadtest in the tree"
SRC=$(mktemp -d)
(cd "$ROOT" && git archive "$base" | tar -x -C "$SRC") || die "git archive $base failed"
(cd "$SRC" && go build -o "$RUN/base/pop" ./cmd/pop) || die "build of cmd/pop at $base failed"
for b in pop origin loadtest; do
  (cd "$ROOT" && go build -o "$RUN/tree/$b" "./cmd/$b") || die "build of cmd/$b failed"
done
dirty=$(cd "$ROOT" && git status --porcelain -uall 2>/dev/null | wc -l)

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
  pinned 0 "$RUN/$first/pop" -http "127.0.0.1:$pa" -origin "http://127.0.0.1:$http" >"$RUN/$first-r$r.log" 2>&1 &
  popa=$!
  pinned 0 "$RUN/$second/pop" -http "127.0.0.1:$pb" -origin "http://127.0.0.1:$http" >"$RUN/$second-r$r.log" 2>&1 &
  popb=$!
  PIDS+=("$popa" "$popb")
  wait_listening "$popa" "$pa" "PoP ($first)"
  wait_listening "$popb" "$pb" "PoP ($second)"
  log "round $r: $first on :$pa, $second on :$pb"
  (pinned 1 "$RUN/tree/loadtest" -targets "http://127.0.0.1:$pa,http://127.0.0.1:$pb" -broadcasters 1 \
    -rtmp "rtmp://127.0.0.1:$rtmp/live/" -stream-prefix "ab-r$r-" -scenario flash -players "$PLAYERS" \
    -flash-after 20s -flash-within 10s -flash-factor "$FACTOR" -duration 60s -dash 0.5 -step 5 \
    -json "$RUN/loadtest-r$r.json" >"$RUN/loadtest-r$r.log" 2>&1) || die "loadtest failed in round $r (see $RUN)"
  ca=$(proc_secs "$popa") cb=$(proc_secs "$popb")
  stop "${PIDS[@]}"
  PIDS=()
  if [[ $first == base ]]; then cbase=$ca ctree=$cb; else cbase=$cb ctree=$ca; fi
  ratio=$(calc "$ctree / $cbase")
  ratios+=("$ratio")
  report "$(printf '%-6s %-10s %10s %10s %8.3f' "$r" "$first" "$cbase" "$ctree" "$ratio")"
  jq -e '.stalls == 0 and .error_count == 0' "$RUN/loadtest-r$r.json" >/dev/null ||
    report "  round $r: players stalled or met errors: $(jq -c '{stalls, error_count}' "$RUN/loadtest-r$r.json")"
done
report "tree/base CPU: mean $(printf '%s\n' "${ratios[@]}" | awk '{ s += $1 } END { printf "%.3f", s / NR }') over $ROUNDS rounds"
report "reproduce: BASE=$base PLAYERS=$PLAYERS FACTOR=$FACTOR ROUNDS=$ROUNDS bench/flash/ab.sh"
