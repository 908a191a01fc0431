#!/usr/bin/env bash
# Transcode benchmark: how fast the default ladder (720p 2.5M, 480p 1M,
# 240p 400k from a 1080p30 source) encodes on this machine, with which x264
# preset, and how much CPU it leaves free. Loopback only.
#
#   bench/transcode/run.sh                 # the default run (~4 min)
#   SECONDS_SRC=20 PRESETS=veryfast LIVE_SECONDS=15 bench/transcode/run.sh
#
# Phase 1 (speed): our exact ffmpeg command line (go run ./bench/transcode/
# args, the same transcode.Args the server uses) on a 1080p30 file fed as
# fast as it can take it, per preset: speed in x real time, and the CPU
# it needs to keep up with one source at real time.
# Phase 2 (live): cmd/live with the default ladder; ffmpeg publishes the
# 1080p30 source in real time; the ladder's ffmpeg and our process are
# sampled from /proc, and /metrics tells whether the ladder kept up
# (live_transcode_speed_ratio, live_transcode_frames_dropped_total).
set -euo pipefail

SECONDS_SRC=${SECONDS_SRC:-60}
PRESETS=${PRESETS:-veryfast faster superfast ultrafast}
LIVE_SECONDS=${LIVE_SECONDS:-40}
LIVE_WARMUP=${LIVE_WARMUP:-10}
LADDER=${LADDER:-720p:2500k,480p:1000k,240p:400k}

root=$(cd "$(dirname "$0")/../.." && pwd)
out=$root/bench/out
mkdir -p "$out"
cd "$root"
ncpu=$(nproc)
clk=$(getconf CLK_TCK)
results=$out/transcode-results.txt
: >"$results"
say() { echo "$*" | tee -a "$results"; }

src=$out/transcode-src-1080p30-gop2s-${SECONDS_SRC}s.flv
if [[ ! -s $src ]]; then
  echo "making the source: 1080p30, 2-s GOP, B-frames, 4.5 Mb/s, ${SECONDS_SRC} s"
  ffmpeg -hide_banner -nostdin -loglevel error -y \
    -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=$SECONDS_SRC" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$SECONDS_SRC" \
    -c:v libx264 -preset veryfast -g 60 -keyint_min 60 -sc_threshold 0 -b:v 4500k -maxrate 4500k -bufsize 9000k \
    -pix_fmt yuv420p -c:a aac -b:a 128k -f flv "$src"
fi

say "# transcode bench, $(date -u +%FT%TZ), $ncpu CPUs, $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
say "# source: 1080p30, 2-s GOP, ${SECONDS_SRC} s; ladder $LADDER"
say ""
say "## phase 1: encode speed, fed as fast as it goes"
say "$(printf '%-10s %8s %10s %14s %12s' preset speed cpu_s cores@1x free@1x)"
for preset in $PRESETS; do
  mapfile -t args < <(go run ./bench/transcode/args -preset "$preset" -ladder "$LADDER")
  tfile=$(mktemp)
  ffmpeg -hide_banner -nostdin -loglevel error -i "$src" -map 0:v -c copy -f mpegts pipe:1 |
    /usr/bin/time -f "%e %U %S" -o "$tfile" ffmpeg "${args[@]}" >/dev/null
  read -r wall user sys <"$tfile"
  rm -f "$tfile"
  awk -v p="$preset" -v w="$wall" -v u="$user" -v s="$sys" -v d="$SECONDS_SRC" -v n="$ncpu" 'BEGIN {
    cpu = u + s; printf "%-10s %7.2fx %10.1f %14.2f %12.2f\n", p, d / w, cpu, cpu / d, n - cpu / d }' | tee -a "$results"
done
say "(speed: media seconds per wall second; cores@1x: CPU cores the ladder needs for one source at real time; free@1x: what is left of $ncpu)"

say ""
say "## phase 2: live, default ladder (veryfast), publisher in real time"
go build -o "$out/transcode-live" ./cmd/live
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rtmp=$(port)
http=$(port)
"$out/transcode-live" -demo=false -rtmp "127.0.0.1:$rtmp" -http "127.0.0.1:$http" -ladder "$LADDER" >"$out/transcode-live.out" 2>"$out/transcode-live.err" &
live=$!
pub=
cleanup() {
  [[ -n $pub ]] && kill "$pub" 2>/dev/null || true
  kill "$live" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$http/healthz" >/dev/null && break; sleep 0.2; done
ffmpeg -hide_banner -nostdin -loglevel error -re -stream_loop -1 -i "$src" -c copy -f flv "rtmp://127.0.0.1:$rtmp/live/bench" &
pub=$!
sleep "$LIVE_WARMUP"
ladder=$(pgrep -P "$live" ffmpeg | head -1)
[[ -n $ladder ]] || { echo "no ladder ffmpeg running; see $out/transcode-live.err" >&2; exit 1; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
metric() { curl -fs "http://127.0.0.1:$http/metrics" | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { print s + 0 }'; }
l0=$(ticks "$ladder"); o0=$(ticks "$live"); d0=$(metric 'live_transcode_frames_dropped_total')
sleep "$LIVE_SECONDS"
l1=$(ticks "$ladder"); o1=$(ticks "$live"); d1=$(metric 'live_transcode_frames_dropped_total')
curl -fs "http://127.0.0.1:$http/metrics" | grep '^live_transcode_speed_ratio' | tee -a "$results"
restarts=$(metric 'live_transcode_restarts_total')
awk -v l=$((l1 - l0)) -v o=$((o1 - o0)) -v c="$clk" -v d="$LIVE_SECONDS" -v n="$ncpu" -v dr=$((d1 - d0)) -v r="$restarts" 'BEGIN {
  printf "ladder ffmpeg: %.2f cores; our process (ingest, packager, origin, PoP): %.2f cores; free: %.2f of %d\n", l / c / d, o / c / d, n - (l + o) / c / d, n
  printf "frames dropped in %d s: %d; ffmpeg restarts: %d\n", d, dr, r }' | tee -a "$results"
echo "results in $results"
