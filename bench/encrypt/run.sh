#!/usr/bin/env bash
# bench/encrypt/run.sh: what encrypting streams (issue #25) costs, side by
# side with the same streams in the clear, in one run on this machine:
#
#   1. ingest + packaging CPU: our origin (cmd/origin, no ladder) with N
#      RTMP publishers of the 2.6 Mb/s test input (720p30 H.264 2.5 Mb/s +
#      AAC 128 kb/s, the input of bench/ingest), once clear and once with
#      -encrypt (key period KEY_PERIOD), alternated ROUNDS times; the
#      origin's CPU-seconds per stream-second, and the ratio.
#   2. segment availability: the p99 of the origin's
#      live_origin_segment_availability_seconds over each measurement (from
#      the arrival at ingest of the access unit closing a segment to the
#      segment listed), interpolated in its histogram buckets.
#   3. PoP hit throughput: wrk -t2 -c64 on one cached segment of a clear
#      stream and of an encrypted one through one PoP node, alternated.
#
# Everything runs on 127.0.0.1 and stops by itself; every process started
# is ended on exit. Settings (environment): N=10 D=30 WARMUP=8 ROUNDS=2
# KEY_PERIOD=10s WRK_D=8 WRK_ROUNDS=3 PHASES=cpu,pop.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-10} D=${D:-30} WARMUP=${WARMUP:-8} ROUNDS=${ROUNDS:-2} KEY_PERIOD=${KEY_PERIOD:-10s} WRK_D=${WRK_D:-8}
WRK_ROUNDS=${WRK_ROUNDS:-3} PHASES=${PHASES:-cpu,pop}
OUT=bench/out
RUN=$OUT/encrypt-run
RESULTS=$OUT/encrypt-results.txt
mkdir -p "$RUN"
: >"$RESULTS"
# shellcheck source=../lib.sh
source bench/lib.sh
install_missing ffmpeg:ffmpeg wrk:wrk curl:curl ss:iproute2

SRC=$OUT/ingest-src-720p30-2500k-gop30-60s.flv
if ! [[ -s $SRC ]]; then
  log "encoding the test input once: $SRC"
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 60 \
    -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p \
    -b:v 2500k -maxrate 2500k -bufsize 2500k -g 30 -keyint_min 30 -sc_threshold 0 \
    -c:a aac -b:a 128k -ac 2 -f flv "$SRC.tmp"
  mv "$SRC.tmp" "$SRC"
fi
log "building cmd/origin and cmd/pop"
go build -o "$OUT/encrypt-origin" ./cmd/origin
go build -o "$OUT/encrypt-pop" ./cmd/pop

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap cleanup EXIT

# ticks PID: user+system clock ticks of PID so far.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# p99 METRICS_BEFORE METRICS_AFTER: the 99th percentile of the segment
# availability observed between two /metrics dumps, in ms, interpolated
# linearly within its bucket.
p99() {
  awk '
    /^live_origin_segment_availability_seconds_bucket/ {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
      if (FILENAME == ARGV[1]) before[le] = $2; else { after[le] = $2; order[n++] = le }
    }
    END {
      total = after["+Inf"] - before["+Inf"]
      if (total <= 0) { print "n/a"; exit }
      want = 0.99 * total; prevc = 0; prevle = 0
      for (i = 0; i < n; i++) {
        le = order[i]; c = after[le] - before[le]
        if (c >= want) {
          if (le == "+Inf") { printf ">%g", prevle * 1000; exit }
          printf "%.2f", (prevle + (le - prevle) * (want - prevc) / (c - prevc)) * 1000; exit
        }
        prevc = c; prevle = le
      }
    }' "$1" "$2"
}

# origin_run MODE ROUND: one measurement of N publishers into a fresh
# origin, clear or encrypted; prints "cpu_per_stream_second p99_ms".
origin_run() {
  local mode=$1 round=$2 http rtmp extra=() pid i t0 t1 m0 m1
  http=$(free_port) rtmp=$(free_port)
  [[ $mode == enc ]] && extra=(-encrypt -key-period "$KEY_PERIOD")
  "$OUT/encrypt-origin" -http "127.0.0.1:$http" -rtmp "127.0.0.1:$rtmp" -transcode=false -log-level warn "${extra[@]}" \
    >"$RUN/origin-$mode-r$round.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_listening "$pid" "$http" "origin ($mode)"
  for ((i = 0; i < N; i++)); do
    ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 -i "$SRC" -c copy \
      -f flv "rtmp://127.0.0.1:$rtmp/live/s$i" >>"$RUN/ffmpeg-$mode.log" 2>&1 &
    PIDS+=("$!")
  done
  sleep "$WARMUP"
  curl -fsS "http://127.0.0.1:$http/metrics" >"$RUN/m0"
  t0=$(ticks "$pid")
  sleep "$D"
  t1=$(ticks "$pid")
  curl -fsS "http://127.0.0.1:$http/metrics" >"$RUN/m1"
  live=$(curl -fsS "http://127.0.0.1:$http/api/streams" | grep -o '"live":true' | wc -l)
  enc=$(curl -fsS "http://127.0.0.1:$http/api/streams" | grep -o '"encrypted":true' | wc -l)
  cleanup
  ((live == N)) || die "$mode: $live of $N streams live"
  [[ $mode == clear ]] || ((enc == N)) || die "$mode: $enc of $N streams encrypted"
  echo "$(calc "($t1 - $t0) / $(getconf CLK_TCK) / ($N * $D)") $(p99 "$RUN/m0" "$RUN/m1")"
}

report "# bench/encrypt: N=$N streams of 2.6 Mb/s, D=$D s per measurement, key period $KEY_PERIOD, $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A cpu
[[ $PHASES == *cpu* ]] && report "round  mode   origin CPU-s per stream-s   availability p99 (ms)"
for ((r = 1; r <= ROUNDS; r++)); do
  [[ $PHASES == *cpu* ]] || break
  for mode in clear enc; do
    read -r c p <<<"$(origin_run "$mode" "$r")"
    cpu[$mode]=$(calc "${cpu[$mode]:-0} + $c")
    report "$r      $mode  $(printf '%.5f' "$c")                     $p"
  done
done
[[ $PHASES == *cpu* ]] && report "encrypted / clear CPU (mean of $ROUNDS rounds): $(printf '%.3f' "$(calc "${cpu[enc]} / ${cpu[clear]}")")x"
[[ $PHASES == *pop* ]] || exit 0

# PoP hit throughput: one origin with one clear and one encrypted stream.
http=$(free_port) rtmp=$(free_port) popp=$(free_port)
"$OUT/encrypt-origin" -http "127.0.0.1:$http" -rtmp "127.0.0.1:$rtmp" -transcode=false -log-level warn -encrypt-streams '^enc$' \
  >"$RUN/origin-pop.log" 2>&1 &
PIDS+=("$!")
wait_listening "$!" "$http" origin
"$OUT/encrypt-pop" -http "127.0.0.1:$popp" -origin "http://127.0.0.1:$http" -log-level warn >"$RUN/pop.log" 2>&1 &
PIDS+=("$!")
wait_listening "$!" "$popp" pop
for s in clear enc; do
  ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 -i "$SRC" -c copy -f flv "rtmp://127.0.0.1:$rtmp/live/$s" >>"$RUN/ffmpeg-pop.log" 2>&1 &
  PIDS+=("$!")
done
sleep 6
declare -A seg
for s in clear enc; do
  media=$(curl -fsS "http://127.0.0.1:$popp/live/$s/index.m3u8" | grep -v '^#' | grep v0 | head -1)
  seg[$s]="http://127.0.0.1:$popp/live/$s/${media%index.m3u8}2.m4s"
  curl -fsS -o /dev/null "${seg[$s]}" || die "segment ${seg[$s]}"
done
report "PoP hit throughput, wrk -t2 -c64 -d${WRK_D}s, one cached segment (the order alternates)"
declare -A rsum
for ((r = 1; r <= WRK_ROUNDS; r++)); do
  order="clear enc"
  ((r % 2)) || order="enc clear"
  for s in $order; do
    cache=$(curl -fsS -D - -o /dev/null "${seg[$s]}" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache" { print $2 }')
    rps=$(wrk -t2 -c64 -d"${WRK_D}s" "${seg[$s]}" | awk '/Requests\/sec/ { print $2 }')
    rsum[$s]=$(calc "${rsum[$s]:-0} + $rps")
    size=$(curl -fsS "${seg[$s]}" | wc -c)
    report "round $r  $s  ${size} bytes  X-Cache: $cache  $rps req/s"
  done
done
report "encrypted / clear PoP hits (mean of $WRK_ROUNDS rounds): $(printf '%.3f' "$(calc "${rsum[enc]} / ${rsum[clear]}")")x"
cleanup
report "reproduce: N=$N D=$D ROUNDS=$ROUNDS KEY_PERIOD=$KEY_PERIOD WRK_D=$WRK_D WRK_ROUNDS=$WRK_ROUNDS PHASES=$PHASES bench/encrypt/run.sh"
