#!/usr/bin/env bash
# Low-latency benchmark (#22): cmd/live (ingest, packager, origin and one
# PoP node in one process) and cmd/loadtest, over loopback on this
# machine: PLAYERS LL-HLS players, then PLAYERS low-latency DASH players,
# each phase on a stream of its own that loadtest publishes in real time.
# Optionally the same players without low latency, for comparison. See
# README.md beside this file.
#
#   bench/ll/run.sh                                  # 1000 LL-HLS, then 1000 LL-DASH, 60 s each (~3 min)
#   PHASES=ll-hls,hls,ll-dash,dash bench/ll/run.sh   # with the others beside them
#   PLAYERS=50 DURATION=15 bench/ll/run.sh           # a quick check
#
# Every setting is an environment variable.
set -euo pipefail

usage() {
  cat <<'EOF2'
usage: [VAR=value ...] bench/ll/run.sh

  PLAYERS=1000     players in each phase, all from the start
  DURATION=60      seconds each phase's players run
  PHASES=ll-hls,ll-dash
                   in order; ll-hls: LL-HLS players (hls.js lowLatencyMode:
                   parts, preload hints, blocking and delta playlist
                   reloads); ll-dash: low-latency DASH players (dash.js
                   low-latency mode: segments asked for
                   availabilityTimeOffset early, read chunk by chunk);
                   hls, dash: the same players without low latency
  PIN=1            pin cmd/live to CPU 0 and loadtest to the others
                   (taskset), when the machine has 2 or more (0: no pinning)
  WAIT_MAX=1200    seconds to wait for other benchmarks to end
  LIVE_BIN, LOADTEST_BIN
                   prebuilt cmd/live and cmd/loadtest (default: built from
                   this tree)
EOF2
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
(($# == 0)) || { usage >&2; exit 2; }

PLAYERS=${PLAYERS:-1000}
DURATION=${DURATION:-60}
PHASES=${PHASES:-ll-hls,ll-dash}
PIN=${PIN:-1}
WAIT_MAX=${WAIT_MAX:-1200}
for v in PLAYERS DURATION WAIT_MAX; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "run.sh: $v must be a whole number, not '${!v}'" >&2; exit 2; }
done
((PLAYERS >= 1 && DURATION >= 5)) || { echo "run.sh: PLAYERS must be at least 1, DURATION at least 5" >&2; exit 2; }
IFS=, read -r -a PHASELIST <<<"$PHASES"
for p in "${PHASELIST[@]}"; do
  [[ $p =~ ^(ll-hls|ll-dash|hls|dash)$ ]] || { echo "run.sh: unknown phase '$p' in PHASES (ll-hls, ll-dash, hls, dash)" >&2; exit 2; }
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/bench/out
RUN=$OUT/ll-run # logs, reports and JSON of the latest run
RESULTS=$OUT/ll-results.txt
# shellcheck source=../lib.sh
source "$ROOT/bench/lib.sh"
BINDIR=$OUT/ll-bin
REPRO="PLAYERS=$PLAYERS DURATION=$DURATION PHASES=$PHASES PIN=$PIN bench/ll/run.sh"
OTHER_BENCH='bench/(ingest|pop|flash)/run\.sh|bench/out/origin-bench|ingest-src-[^ ]*\.flv'
LIVE_CPUS="" REST_CPUS=""
if ((PIN)) && (($(nproc) >= 2)) && command -v taskset >/dev/null; then
  LIVE_CPUS=0 REST_CPUS=1-$(($(nproc) - 1))
fi

# ---------------------------------------------------------------- cleanup
PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  ((${#PIDS[@]} == 0)) || stop "${PIDS[@]}"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted; stopping everything this script started"; exit 130' INT
trap 'log "terminated; stopping everything this script started"; exit 143' TERM

# cpu_secs PID prints the CPU seconds PID has used (user and system).
cpu_secs() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); split($0, f, " "); printf "%.1f", (f[12] + f[13]) / hz }' "/proc/$1/stat"
}

# ---------------------------------------------------------------- main
mkdir -p "$OUT" "$BINDIR"
exec 9>"$OUT/ll-run.lock"
if ! flock -n 9; then
  log "another bench/ll/run.sh is running; waiting up to ${WAIT_MAX}s"
  flock -w "$WAIT_MAX" 9 || { echo "run.sh: another bench/ll/run.sh still runs after ${WAIT_MAX}s" >&2; exit 1; }
fi
: >"$RESULTS"
install_missing jq:jq ss:iproute2
wait_for_quiet
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) > PLAYERS * 4 + 500)) || die "ulimit -n is $(ulimit -n): too low for $PLAYERS players (two connections each, both ends in this machine)"

LIVE=${LIVE_BIN:-$BINDIR/live}
LOADTEST=${LOADTEST_BIN:-$BINDIR/loadtest}
for b in live loadtest; do
  var=${b^^}_BIN
  [[ -n ${!var:-} ]] && continue
  log "building cmd/$b into $BINDIR"
  (cd "$ROOT" && go build -o "$BINDIR/$b" "./cmd/$b") || die "build of cmd/$b failed"
done
rm -rf "$RUN"
mkdir -p "$RUN"

dirty=$(cd "$ROOT" && git status --porcelain -uall -- pop origin loadtest cmd internal 2>/dev/null | wc -l)
report "Low-latency benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
report "  tree:     $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$( ((dirty > 0)) && echo " + $dirty uncommitted file(s)"), $(go version | awk '{ print $3 }')${LIVE_BIN:+; LIVE_BIN=$LIVE_BIN}${LOADTEST_BIN:+; LOADTEST_BIN=$LOADTEST_BIN}"
report "  setup:    cmd/live -transcode=false -demo=false (ingest, packager, origin, one PoP node in one process: 1-s segments"
report "            of 250-ms chunks); per phase, loadtest publishes the demo clip in real time as a new stream and runs"
report "            $PLAYERS players of that kind for ${DURATION}s, video and audio, all through the PoP node"
pinning="none"
[[ -z $LIVE_CPUS ]] || pinning="cmd/live on CPU $LIVE_CPUS, loadtest on CPUs $REST_CPUS"
report "  pinning:  $pinning"
report "  machine before the start: load $(cut -d' ' -f1-3 /proc/loadavg)"
report ""

RTMP_PORT=$(free_port)
HTTP_PORT=$(free_port)
pinned "$LIVE_CPUS" "$LIVE" -rtmp "127.0.0.1:$RTMP_PORT" -http "127.0.0.1:$HTTP_PORT" -transcode=false -demo=false >"$RUN/live.log" 2>&1 &
LIVE_PID=$!
PIDS+=("$LIVE_PID")
wait_listening "$LIVE_PID" "$HTTP_PORT" "cmd/live"
wait_listening "$LIVE_PID" "$RTMP_PORT" "cmd/live (RTMP)"
BASE=http://127.0.0.1:$HTTP_PORT

declare -A CPU LOAD
for phase in "${PHASELIST[@]}"; do
  ll=0 dash=0
  [[ $phase == ll-* ]] && ll=1
  [[ $phase == *dash ]] && dash=1
  log "$phase: $PLAYERS players for ${DURATION}s; load $(cut -d' ' -f1 /proc/loadavg)"
  c0=$(cpu_secs "$LIVE_PID")
  pinned "$REST_CPUS" "$LOADTEST" -targets "$BASE" -rtmp "rtmp://127.0.0.1:$RTMP_PORT/live/" -broadcasters 1 -stream-prefix "ll-$phase-" \
    -players "$PLAYERS" -ll "$ll" -dash "$dash" -duration "${DURATION}s" -metrics "$BASE" -step 10 \
    -json "$RUN/$phase.json" >"$RUN/$phase-report.txt" 2>"$RUN/$phase-progress.log" &
  lpid=$!
  PIDS+=("$lpid")
  rc=0
  wait "$lpid" || rc=$?
  ((rc == 0)) || die "loadtest failed in phase $phase (exit $rc; see $RUN/$phase-progress.log)"
  CPU[$phase]=$(awk -v a="$c0" -v b="$(cpu_secs "$LIVE_PID")" 'BEGIN { printf "%.1f", b - a }')
  LOAD[$phase]=$(cut -d' ' -f1 /proc/loadavg)
  cat "$RUN/$phase-report.txt" >>"$RUN/console.txt"
done

# row prints one phase's results from its JSON report.
row() {
  local p=$1
  jq -r --arg p "$p" --arg cpu "${CPU[$p]}" --arg load "${LOAD[$p]}" '
    def f(x): if x == null then "-" else (x * 100 | round / 100 | tostring) end;
    def ms(x): if x == null then "-" else (x | round | tostring) end;
    .upstream as $u |
    [ $p,
      (.players | tostring),
      ms(.glass_to_player[$p].p50_ms), ms(.glass_to_player[$p].p99_ms),
      (.stalls | tostring), f(.stall_rate), (.error_count | tostring),
      f($u.pop_playlist_fetches_per_part), f($u.pop_fetches_per_part), f($u.pop_fetches_per_segment),
      f($u.pop_origin_fetches.playlist + $u.pop_origin_fetches.manifest),
      f(($u.pop_waiter_release.part // $u.pop_waiter_release.segment).p99_ms),
      f(($u.pop_waiter_release.part // $u.pop_waiter_release.segment).max_ms),
      f($u.pop_waiter_release.playlist.p99_ms),
      ms(if .classes.part.requests > 0 then .classes.part.latency.p99_ms else .classes.segment.latency.p99_ms end),
      ms(.classes.playlist.latency.p99_ms),
      $cpu, f(.generator_cpu_s), f(.generator_cpu_us_per_request), $load ] | @tsv' "$RUN/$p.json"
}

fmt='%-8s %-7s %-8s %-8s %-6s %-6s %-6s %-9s %-8s %-8s %-9s %-9s %-9s %-9s %-8s %-7s %-6s %-7s %-7s %s'
report "$(printf "$fmt" phase players 'latency' 'latency' stalls stall errors 'PoP->orig' 'PoP->org' 'PoP->org' 'pl+MPD' 'release' 'release' 'pl rel.' 'media' 'pl' 'live' 'loadtst' 'loadtst' load)"
report "$(printf "$fmt" '' '' 'p50 ms' 'p99 ms' '' 'rate' '' 'pl/part' 'all/part' 'seg/seg' 'fetches' 'p99 ms' 'max ms' 'p99 ms' 'p99 ms' 'p99 ms' 'CPU s' 'CPU s' 'us/req' '1 min')"
for p in "${PHASELIST[@]}"; do
  report "$(row "$p" | awk -F'\t' -v fmt="$fmt" '{ printf fmt, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20 }')"
done
report ""
report "  latency: glass-to-player, from a frame reaching ingest (EXT-X-PROGRAM-DATE-TIME, ProducerReferenceTime) to its being"
report "  on the player's screen, sampled as media arrives. PoP->orig: the node's fetches from the origin (playlists, all"
report "  classes) per LL-HLS part listed, and media-segment fetches per segment packaged (1.00: each asked once; players"
report "  start behind the edge, so a little more). pl+MPD fetches: the node's playlist and MPD fetches from the origin in"
report "  the phase. release: live_pop_waiter_release_seconds, from the arrival at the node of what held requests waited"
report "  for (the last byte of a part, of a segment being produced; a playlist) to each one's answer, interpolated in its"
report "  buckets. media p99: players' request to last byte of parts (LL, held until produced) or segments. live CPU:"
report "  the whole cmd/live process (ingest, packager, origin, PoP) during the phase, loadtest's start-up included."
report ""
report "reproduce: $REPRO"
report "results: $RESULTS; reports and JSON: $RUN"
