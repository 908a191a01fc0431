#!/usr/bin/env bash
# Flash-crowd benchmark: one broadcaster publishes to cmd/origin; simulated
# players (cmd/loadtest, HLS and DASH) watch it through a 3-node PoP, going
# from PLAYERS to PLAYERS×FACTOR within seconds. Then the same through nginx
# (proxy_cache_lock) as the PoP, in the same run, on this machine, over
# loopback only. See README.md beside this file.
#
#   bench/flash/run.sh                               # 500 -> 5000 players (~3 min)
#   PLAYERS=50 STEADY=10 HOLD=10 bench/flash/run.sh  # a quick check (~1 min)
#
# Every setting is an environment variable.
set -euo pipefail

usage() {
  cat <<'EOF2'
usage: [VAR=value ...] bench/flash/run.sh

  PLAYERS=500      players before the crowd
  FACTOR=10        the crowd multiplies them by this
  STEADY=20        seconds at PLAYERS before the crowd
  RISE=10          seconds the crowd takes to arrive
  HOLD=30          seconds at PLAYERS×FACTOR
  DASH=0.5         share of players on DASH (the others on HLS)
  LL=0             share of players, HLS and DASH alike, in low-latency
                   mode (LL-HLS parts; DASH chunks read as produced)
  SYSTEMS=ours1,ours3,nginx
                   ours1: one cmd/pop node; ours3: 3 nodes sharing one key space
  PIN=1            pin the PoP (ours or nginx) to CPU 0, and the origin and
                   the load generator to the other CPUs (taskset), when
                   the machine has 2 or more (0: no pinning)
  ROUNDS=2         rounds; each runs every system once, in rotated order
  OURS_PROCS=n     GOMAXPROCS of each of our 3 PoP nodes (default: Go's,
                   the number of cores)
  OURS_ARGS=...    more flags for every cmd/pop node (e.g. -debug-addr to
                   profile one node; word-split)
  WAIT_MAX=1200    seconds to wait for other benchmarks to end
EOF2
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
(($# == 0)) || { usage >&2; exit 2; }

PLAYERS=${PLAYERS:-500}
FACTOR=${FACTOR:-10}
STEADY=${STEADY:-20}
RISE=${RISE:-10}
HOLD=${HOLD:-30}
DASH=${DASH:-0.5}
LL=${LL:-0}
SYSTEMS=${SYSTEMS:-ours1,ours3,nginx}
PIN=${PIN:-1}
ROUNDS=${ROUNDS:-2}
OURS_PROCS=${OURS_PROCS:-}
OURS_ARGS=${OURS_ARGS:-}
WAIT_MAX=${WAIT_MAX:-1200}
for v in PLAYERS FACTOR STEADY RISE HOLD ROUNDS WAIT_MAX; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "run.sh: $v must be a whole number, not '${!v}'" >&2; exit 2; }
done
[[ -z $OURS_PROCS || $OURS_PROCS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: OURS_PROCS must be a positive number" >&2; exit 2; }
((ROUNDS >= 1 && PLAYERS >= 1 && FACTOR >= 1)) || { echo "run.sh: ROUNDS, PLAYERS and FACTOR must be at least 1" >&2; exit 2; }
for v in DASH LL; do
  [[ ${!v} =~ ^(0(\.[0-9]+)?|1(\.0+)?)$ ]] || { echo "run.sh: $v must be in [0, 1]" >&2; exit 2; }
done
IFS=, read -r -a SYSLIST <<<"$SYSTEMS"
for s in "${SYSLIST[@]}"; do
  [[ $s =~ ^(ours1|ours3|nginx)$ ]] || { echo "run.sh: unknown system '$s' in SYSTEMS (ours1, ours3, nginx)" >&2; exit 2; }
done
DURATION=$((STEADY + RISE + HOLD))
PEAK=$((PLAYERS * FACTOR))

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/bench/out
RUN=$OUT/flash-run # logs, configs, reports and plots of the latest run
RESULTS=$OUT/flash-results.txt
# shellcheck source=../lib.sh
source "$ROOT/bench/lib.sh"
BINDIR=$OUT/flash-bin
REPRO="PLAYERS=$PLAYERS FACTOR=$FACTOR STEADY=$STEADY RISE=$RISE HOLD=$HOLD DASH=$DASH LL=$LL SYSTEMS=$SYSTEMS ROUNDS=$ROUNDS PIN=$PIN"
# SYS_CPUS and REST_CPUS are taskset's CPU lists for the PoP and for the
# origin and load generator; empty: no pinning.
SYS_CPUS="" REST_CPUS=""
if ((PIN)) && (($(nproc) >= 2)) && command -v taskset >/dev/null; then
  SYS_CPUS=0 REST_CPUS=1-$(($(nproc) - 1))
fi
[[ -z $OURS_PROCS ]] || REPRO+=" OURS_PROCS=$OURS_PROCS"
[[ -z $OURS_ARGS ]] || REPRO+=" OURS_ARGS='$OURS_ARGS'"
REPRO+=" bench/flash/run.sh"


# ---------------------------------------------------------------- cleanup
PIDS=() # every process this script started and may still be running
NGINX_CACHE=""


cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  ((${#PIDS[@]} == 0)) || stop "${PIDS[@]}"
  [[ -z $NGINX_CACHE ]] || rm -rf "$NGINX_CACHE"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted; stopping everything this script started"; exit 130' INT
trap 'log "terminated; stopping everything this script started"; exit 143' TERM


# OTHER_BENCH matches the other benchmarks of this repo.
OTHER_BENCH='bench/ingest/run\.sh|bench/pop/run\.sh|bench/out/origin-bench|ingest-src-[^ ]*\.flv'




# sys_secs prints the busy CPU seconds of the whole machine so far.
sys_secs() {
  local user nice system irq softirq steal
  read -r _ user nice system _ _ irq softirq steal _ </proc/stat
  awk -v t="$((user + nice + system + irq + softirq + steal))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }'
}

# ---------------------------------------------------------------- systems
start_origin() {
  RTMP_PORT=$(free_port)
  ORIGIN_PORT=$(free_port)
  # No transcoding ladder: the stream is what the broadcaster sends (one
  # video and one audio rendition, both watched), and no ffmpeg shares the
  # cores with the systems measured.
  pinned "$REST_CPUS" "$BINDIR/origin" -rtmp "127.0.0.1:$RTMP_PORT" -http "127.0.0.1:$ORIGIN_PORT" -transcode=false >"$RUN/origin.log" 2>&1 &
  ORIGIN_PID=$!
  PIDS+=("$ORIGIN_PID")
  wait_listening "$ORIGIN_PID" "$ORIGIN_PORT" "origin"
  wait_listening "$ORIGIN_PID" "$RTMP_PORT" "origin (RTMP)"
  ORIGIN=http://127.0.0.1:$ORIGIN_PORT
}

# start_ours N runs N cmd/pop nodes sharing one key space (one: a plain
# node).
start_ours() {
  local n=$1 ports=() peers="" i
  for ((i = 0; i < n; i++)); do
    ports+=("$(free_port)")
    peers+="${peers:+,}http://127.0.0.1:${ports[$i]}"
  done
  TARGETS=$peers
  SYS_PIDS=()
  local env=()
  [[ -z $OURS_PROCS ]] || env=(env "GOMAXPROCS=$OURS_PROCS")
  for ((i = 0; i < n; i++)); do
    local share=()
    ((n == 1)) || share=(-peers "$peers" -self "http://127.0.0.1:${ports[$i]}")
    pinned "$SYS_CPUS" "${env[@]}" "$BINDIR/pop" -http "127.0.0.1:${ports[$i]}" -origin "$ORIGIN" "${share[@]}" $OURS_ARGS \
      >"$RUN/$TAG-node$i.log" 2>&1 &
    PIDS+=("$!")
    SYS_PIDS+=("$!")
    wait_listening "$!" "${ports[$i]}" "ours node $i"
  done
  METRICS="$peers,$ORIGIN"
}
start_ours1() { start_ours 1; }
start_ours3() { start_ours 3; }

# start_nginx runs one nginx listening on 3 ports: one cache (a PoP of
# three entry points, as ours shares one key space over its 3 nodes), in
# tmpfs as ours is in memory.
start_nginx() {
  local ports=() i
  for i in 0 1 2; do ports+=("$(free_port)"); done
  start_nginx_pop "$RUN/nginx" "$ORIGIN_PORT" "$SYS_CPUS" "${ports[@]}"
  SYS_PIDS=("$NGINX_PID")
  TARGETS="http://127.0.0.1:${ports[0]},http://127.0.0.1:${ports[1]},http://127.0.0.1:${ports[2]}"
  METRICS=$ORIGIN # nginx has no /metrics: the origin counts its requests
}

# run_system starts a system, runs the flash crowd through it, stops it.
# TAG names the run's files: system and round.
run_system() {
  local s=$1 c0 c1 o0 o1 m0 m1 lpid rc=0
  "start_$s"
  log "$TAG up: $TARGETS; flash crowd $PLAYERS -> $PEAK players over ${DURATION}s; load $(cut -d' ' -f1 /proc/loadavg)"
  c0=$(tree_secs "${SYS_PIDS[@]}")
  o0=$(tree_secs "$ORIGIN_PID")
  m0=$(sys_secs)
  pinned "$REST_CPUS" "$BINDIR/loadtest" -targets "$TARGETS" -broadcasters 1 -rtmp "rtmp://127.0.0.1:$RTMP_PORT/live/" -stream-prefix "flash-$TAG-" \
    -scenario flash -players "$PLAYERS" -flash-after "${STEADY}s" -flash-within "${RISE}s" -flash-factor "$FACTOR" \
    -duration "${DURATION}s" -dash "$DASH" -ll "$LL" -metrics "$METRICS" -step 5 \
    -json "$RUN/$TAG.json" -plot "$RUN/$TAG.png" >"$RUN/$TAG-report.txt" 2>"$RUN/$TAG-progress.log" &
  lpid=$!
  PIDS+=("$lpid")
  wait "$lpid" || rc=$?
  ((rc == 0)) || die "loadtest failed against $s (exit $rc; see $RUN/$TAG-progress.log)"
  m1=$(sys_secs)
  c1=$(tree_secs "${SYS_PIDS[@]}")
  o1=$(tree_secs "$ORIGIN_PID")
  CPU[$TAG]=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", b - a }')
  # Busy time of the machine not spent by the PoP, the origin or the
  # load generator: neighbours, and the kernel's loopback work.
  OTHER[$TAG]=$(awk -v a="$m0" -v b="$m1" -v p="${CPU[$TAG]}" -v o="$(awk -v a="$o0" -v b="$o1" 'BEGIN { print b - a }')" \
    -v l="$(jq .generator_cpu_s "$RUN/$TAG.json")" 'BEGIN { printf "%.1f", b - a - p - o - l }')
  cat "$RUN/$TAG-report.txt" >>"$RUN/console.txt"
  stop "${SYS_PIDS[@]}"
  if [[ $s == nginx ]]; then
    log "nginx error.log: $(grep -c '\[error\]\|\[crit\]\|\[alert\]' "$RUN/nginx/logs/error.log" 2>/dev/null || true) error lines"
    rm -rf "$NGINX_CACHE"
  fi
}

# row prints one result line of a system from its JSON report.
row() {
  local t=$1 s=${1%-r*} f=$RUN/$1.json
  jq -r --arg t "$t" --arg s "$s" --arg cpu "${CPU[$t]}" --arg other "${OTHER[$t]}" '
    def f(x): if x == null then "-" else (x * 100 | round / 100 | tostring) end;
    [ $t,
      (if $s != "nginx" then f(.upstream.pop_fetches_per_segment) else "-" end),
      f(.upstream.origin_requests_per_segment),
      f(.classes.segment.latency.p99_ms),
      f([.series[] | .segment.latency.p99_ms] | max),
      f(.classes.playlist.latency.p99_ms),
      f(.first_segment.p99_ms),
      (.stalls | tostring),
      f(.stall_rate),
      f(.before_crowd.stall_rate),
      f(.max_stall_rate_1m),
      (.error_count | tostring),
      (.peak_viewers | tostring),
      $cpu,
      f(($cpu | tonumber) * 1e6 / ([.classes[] | .requests] | add)),
      f(.generator_cpu_s),
      f(($cpu | tonumber) / .generator_cpu_s),
      $other ] | @tsv' "$f"
}

# ---------------------------------------------------------------- main
mkdir -p "$OUT" "$BINDIR"
exec 9>"$OUT/flash-run.lock"
if ! flock -n 9; then
  log "another bench/flash/run.sh is running; waiting up to ${WAIT_MAX}s"
  flock -w "$WAIT_MAX" 9 || { echo "run.sh: another bench/flash/run.sh still runs after ${WAIT_MAX}s" >&2; exit 1; }
fi
: >"$RESULTS"
install_missing nginx:nginx jq:jq curl:curl ss:iproute2
wait_for_quiet
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) > PEAK * 2 + 500)) || die "ulimit -n is $(ulimit -n): too low for $PEAK players (each PoP holds their connections)"

log "building cmd/origin, cmd/pop, cmd/loadtest into $BINDIR"
for b in origin pop loadtest; do
  (cd "$ROOT" && go build -o "$BINDIR/$b" "./cmd/$b") || die "build of cmd/$b failed"
done
rm -rf "$RUN"
mkdir -p "$RUN"

dirty=$(cd "$ROOT" && git status --porcelain -uall -- pop origin loadtest cmd 2>/dev/null | wc -l)
report "Flash-crowd benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), ulimit -n $(ulimit -n)"
report "  tree:     $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$( ((dirty > 0)) && echo " + $dirty uncommitted file(s)"), $(go version | awk '{ print $3 }')"
report "  scenario: 1 broadcaster (the demo clip, real time) -> cmd/origin -transcode=false; $PLAYERS players for ${STEADY}s, x$FACTOR within ${RISE}s, held ${HOLD}s; DASH share $DASH; low-latency share $LL; video + audio"
report "  ours1:    one cmd/pop node; ours3: 3 nodes sharing one key space (-peers/-self); 1 GiB cache each"
report "  pinning:  $([[ -n $SYS_CPUS ]] && echo "PoP on CPU $SYS_CPUS, origin and load generator on CPUs $REST_CPUS" || echo none)"
report "  nginx:    $(nginx -v 2>&1 | sed 's/.*version: //'), one process on 3 ports, one proxy_cache in tmpfs, proxy_cache_lock on, use_stale updating"
report "  machine before the start: load $(cut -d' ' -f1-3 /proc/loadavg)"
report ""

start_origin
declare -A CPU OTHER
TAGS=()
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < ${#SYSLIST[@]}; i++)); do
    s=${SYSLIST[$(((r - 1 + i) % ${#SYSLIST[@]}))]}
    TAG=$s-r$r
    TAGS+=("$TAG")
    run_system "$s"
  done
done

fmt='%-9s %-12s %-11s %-8s %-9s %-8s %-8s %-7s %-6s %-9s %-7s %-7s %-5s %-8s %-9s %-9s %-9s %s'
report "$(printf "$fmt" system 'PoP->origin' 'origin req' 'seg p99' 'worst 1s' 'pl p99' '1st seg' stalls stall 'pre-crowd' 'max 1m' errors peak 'PoP CPU' 'PoP CPU' 'loadtest' 'PoP CPU /' 'other')"
report "$(printf "$fmt" '' '/segment' '/segment' 'ms' 'seg p99' 'ms' 'p99 ms' '' 'rate' 'stall rt' 'rate' '' '' 's' 'us/req' 'CPU s' 'loadtest' 'CPU s')"
for t in "${TAGS[@]}"; do
  report "$(row "$t" | awk -F'\t' -v fmt="$fmt" '{ printf fmt, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18 }')"
done
report ""
report "  per-segment figures count every rendition (video and audio) packaged while players ran; players start 3"
report "  segments behind the live edge, so 1.00 is about 1.05 here. Latency is what the players measured. pre-crowd"
report "  stall rt: the stall rate of the players that started before the crowd (in the first STEADY seconds). other"
report "  CPU: the machine's busy time beyond the PoP, the origin and loadtest (neighbours, loopback softirq)."
report "  PoP CPU / loadtest: the PoP's CPU over the load generator's, which does the same work in every run: a"
report "  figure that a machine slower in one run than in another (a busy neighbour) changes less than CPU seconds."
report ""
report "reproduce: $REPRO"
report "results: $RESULTS; reports, JSON and plots: $RUN"
