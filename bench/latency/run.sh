#!/usr/bin/env bash
# Latency benchmark (#22): glass-to-player latency and first-frame time of
# real players (hls.js, dash.js) in Chromium, through cmd/live's PoP, with
# a 720p30 stream published by ffmpeg in real time; every player and mode
# in one run, on this machine, over loopback. See README.md beside this
# file for what is measured and how to read the results.
#
#   bench/latency/run.sh                          # the full run (~8 min)
#   SECONDS_PER_MODE=20 LOADS=3 bench/latency/run.sh   # a quick check (~3 min)
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/latency/run.sh [-s SECONDS_PER_MODE] [-l LOADS] [-m MODES] [-p PROBE]

  -s SECONDS_PER_MODE  seconds of latency samples per player and mode, from
                       the first frame (60)
  -l LOADS             watch-page loads per format for the first-frame time (10)
  -m MODES             players and modes, in order (hls-ll,hls,dash-ll,dash)
  -p PROBE             seconds of probing when LL-HLS parts reach a player,
                       per rendition, before the players (20; 0: none)

Other environment variables: SETTLE (0: seconds of playback before the
samples begin), TRANSCODE (1: the ladder on, as cmd/live runs by default;
0: the source rendition only), LIVE_ARGS (more flags for cmd/live, e.g.
"-part 200ms"), WAIT_MAX (1200: seconds to wait for other
benchmarks to finish), WAIT=0 (measure at once, beside whatever
runs: the benchmarks running are named in the results), LIVE_BIN (a prebuilt cmd/live to run instead of
building it), STRICT=1 (exit 3 when a goal is missed).
EOF
}

SECONDS_PER_MODE=${SECONDS_PER_MODE:-60}
LOADS=${LOADS:-10}
MODES=${MODES:-hls-ll,hls,dash-ll,dash}
PROBE=${PROBE:-20}
SETTLE=${SETTLE:-0}
TRANSCODE=${TRANSCODE:-1}
WAIT_MAX=${WAIT_MAX:-1200}
WAIT=${WAIT:-1}
STRICT=${STRICT:-0}
while getopts "s:l:m:p:h" opt; do
  case $opt in
    s) SECONDS_PER_MODE=$OPTARG ;;
    l) LOADS=$OPTARG ;;
    m) MODES=$OPTARG ;;
    p) PROBE=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
for v in SECONDS_PER_MODE LOADS PROBE SETTLE WAIT_MAX; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "run.sh: $v must be a whole number, not '${!v}'" >&2; exit 2; }
done
[[ $TRANSCODE == 0 || $TRANSCODE == 1 ]] || { echo "run.sh: TRANSCODE must be 0 or 1" >&2; exit 2; }
[[ $WAIT == 0 || $WAIT == 1 ]] || { echo "run.sh: WAIT must be 0 or 1" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/bench/out
RUN=$OUT/latency-run # logs and raw results of the latest run
RESULTS=$OUT/latency-results.txt
OTHER_BENCH='bench/(ingest|pop|flash|ll|attack|transcode|archive|encrypt)/run\.sh|bench/out/origin-bench|ingest-src-[^ ]*\.flv'
# shellcheck source=../lib.sh
source "$ROOT/bench/lib.sh"
SRC=$OUT/latency-src-720p30-2500k-gop30-60s.flv
LIVE=${LIVE_BIN:-$OUT/latency-live}
WATCH=$OUT/latency-watch

REPRO="SECONDS_PER_MODE=$SECONDS_PER_MODE LOADS=$LOADS MODES=$MODES PROBE=$PROBE"
((SETTLE == 0)) || REPRO+=" SETTLE=$SETTLE"
((TRANSCODE == 1)) || REPRO+=" TRANSCODE=$TRANSCODE"
[[ -z ${LIVE_BIN:-} ]] || REPRO+=" LIVE_BIN=$LIVE_BIN"
[[ -z ${LIVE_ARGS:-} ]] || REPRO+=" LIVE_ARGS='$LIVE_ARGS'"
((WAIT == 1)) || REPRO+=" WAIT=0"
REPRO+=" bench/latency/run.sh"

# Every process this script starts is a direct child, kept in PIDS, and
# stopped at exit (TERM, then KILL); a pid is signalled only while it is
# still our child, never a process that reused its number.
PIDS=()
ours() { [[ -r /proc/$1/stat ]] && [[ $(awk '{ print $4 }' "/proc/$1/stat" 2>/dev/null) == "$$" ]]; }
stop_all() {
  local p t
  for p in "${PIDS[@]}"; do ours "$p" && kill -TERM "$p" 2>/dev/null; done
  for ((t = 0; t < 50; t++)); do
    local left=0
    for p in "${PIDS[@]}"; do ours "$p" && [[ $(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null) != Z ]] && left=1; done
    ((left)) || break
    sleep 0.2
  done
  for p in "${PIDS[@]}"; do ours "$p" && kill -KILL "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap 'rc=$?; trap - EXIT; stop_all; exit $rc' EXIT
trap 'log "interrupted; stopping what this script started"; exit 130' INT
trap 'log "terminated; stopping what this script started"; exit 143' TERM

install_missing ffmpeg:ffmpeg chromium:chromium
mkdir -p "$RUN"
rm -f "$RUN"/*.log "$RUN"/*.jsonl
: >"$RESULTS"
others_at_start=""
if ((WAIT == 1)); then
  wait_for_quiet
else
  others_at_start=$(pgrep -af "$OTHER_BENCH|bench/[a-z]+/run\.sh" | grep -v "bench/latency/run\.sh" | awk '{ print $2, $3 }' | sort -u | tr '\n' ';' || true)
fi

# The source: 60 s of 720p30 H.264 (High, B-frames, a keyframe a
# second, 2.5 Mb/s) and AAC, made once, relayed in a loop in real time
# (-re): the publisher spends no CPU encoding while players are measured.
if ! [[ -s $SRC ]] || ! ffprobe -v error "$SRC" >/dev/null 2>&1; then
  log "encoding the source once: $SRC (about a minute)"
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 60 \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p -b:v 2500k -maxrate 2500k -bufsize 2500k \
    -g 30 -keyint_min 30 -sc_threshold 0 -c:a aac -b:a 128k -ac 2 -f flv "$SRC.tmp"
  mv "$SRC.tmp" "$SRC"
fi

if [[ -z ${LIVE_BIN:-} ]]; then
  log "building cmd/live and bench/latency/watch"
  (cd "$ROOT" && go build -o "$LIVE" ./cmd/live)
fi
(cd "$ROOT" && go build -o "$WATCH" ./bench/latency/watch)

HTTP=$(free_port)
RTMP=$(free_port)
transcode=true
((TRANSCODE == 1)) || transcode=false
# shellcheck disable=SC2086 # LIVE_ARGS is split into flags on purpose
"$LIVE" -demo=false -archive "" -transcode="$transcode" ${LIVE_ARGS:-} \
  -http "127.0.0.1:$HTTP" -rtmp "127.0.0.1:$RTMP" >"$RUN/live.log" 2>&1 &
PIDS+=($!)
wait_listening "${PIDS[-1]}" "$HTTP" "cmd/live (http)"
wait_listening "${PIDS[-1]}" "$RTMP" "cmd/live (rtmp)"
BASE=http://127.0.0.1:$HTTP

ffmpeg -nostdin -hide_banner -loglevel warning -re -stream_loop -1 -i "$SRC" \
  -c copy -f flv "rtmp://127.0.0.1:$RTMP/live/bench" >"$RUN/publisher.log" 2>&1 &
PIDS+=($!)
PUB=${PIDS[-1]}
# Live, with its ladder (a rung joins the manifests with its first
# segment), and a few segments into its window.
want=1
((TRANSCODE == 1)) && want=4
for ((t = 0; ; t++)); do
  ((t < 300)) || die "the stream did not go live with $want video renditions within 30 s (see $RUN)"
  ours "$PUB" || die "the publisher exited (see $RUN/publisher.log)"
  n=$(curl -fs "$BASE/live/bench/index.m3u8" 2>/dev/null | grep -c '^#EXT-X-STREAM-INF' || true)
  ((n >= want)) && break
  sleep 0.1
done
sleep 3

# busy_total prints the machine's busy and total CPU clock ticks so far.
busy_total() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
read -r busy0 total0 < <(busy_total)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
log "measuring: probe ${PROBE}s, $MODES for ${SECONDS_PER_MODE}s each, $LOADS loads per format"
"$WATCH" -base "$BASE" -stream bench -modes "$MODES" -seconds "$SECONDS_PER_MODE" \
  -settle "$SETTLE" -loads "$LOADS" -probe "$PROBE" -out "$RUN/watch.jsonl" | tee -a "$RESULTS"
read -r busy1 total1 < <(busy_total)
ours "$PUB" || die "the publisher exited during the run (see $RUN/publisher.log)"
report ""
report "machine: $(nproc) CPUs, load average $load0 before, $(cut -d' ' -f1-3 /proc/loadavg) after; $(calc "100 * ($busy1 - $busy0) / ($total1 - $total0)" | xargs printf '%.0f')% busy during the run (everything on it, this run included)"
[[ -z $others_at_start ]] || report "other benchmarks running at the start (WAIT=0): $others_at_start"
report "ladder: $(((TRANSCODE == 1)) && echo "on (cmd/live's default: 720p, 480p, 240p from the 720p source)" || echo off)"

# Goals (#22): glass-to-player latency medians over the run with no
# stall, and first-frame medians over the page loads.
missed=0
goal() { # goal WHAT VALUE LIMIT UNIT EXTRA
  local verdict=met
  if [[ -z $2 ]] || ! awk -v v="$2" -v l="$3" 'BEGIN { exit !(v <= l) }'; then
    verdict="NOT met"
    missed=1
  fi
  [[ -n $5 && $verdict == met ]] && { verdict="NOT met ($5)"; missed=1; }
  report "goal: $1 $(printf '%s' "${2:-none}") $4 (goal ≤ $3 $4): $verdict"
}
lat() { jq -r --arg m "$1" 'select(.kind == "latency" and .mode == $m) | .latency.median' "$RUN/watch.jsonl"; }
stalled() { jq -r --arg m "$1" 'select(.kind == "latency" and .mode == $m and .stalls > 0) | "\(.stalls) stalls"' "$RUN/watch.jsonl"; }
ff() { jq -r --arg f "$1" 'select(.kind == "first_frame" and .format == $f) | .first_frame_ms.median' "$RUN/watch.jsonl"; }
[[ ,$MODES, == *,hls-ll,* ]] && goal "hls.js low latency, glass to player, median" "$(lat hls-ll)" 1.0 s "$(stalled hls-ll)"
[[ ,$MODES, == *,dash-ll,* ]] && goal "dash.js low latency, glass to player, median" "$(lat dash-ll)" 1.2 s "$(stalled dash-ll)"
((LOADS > 0)) && goal "first frame, HLS, median" "$(ff hls)" 1000 ms ""
((LOADS > 0)) && goal "first frame, DASH, median" "$(ff dash)" 1000 ms ""
report "reproduce: $REPRO"
report "raw results: $RUN/watch.jsonl; logs: $RUN"
((STRICT == 0 || missed == 0)) || exit 3
