#!/usr/bin/env bash
# Attack replay of issue #18 against cmd/live, over loopback only: A (RTMP
# connections announcing huge messages), C (idle connections holding the
# ingest's room) and B (URL variants and random objects at the PoP). For
# each it prints the server's RSS before, at its peak during, and after
# the attack, and whether a real ffmpeg publisher still gets in while it
# runs. Every phase is bounded in count and time and stops by itself.
#
#   bench/attack/run.sh               # about 3 minutes
#   CONNS_A=3 CONNS_C=1000 bench/attack/run.sh
#   LIVE_BIN=/tmp/live-before bench/attack/run.sh   # a build of your own
set -euo pipefail

CONNS_A=${CONNS_A:-50}      # A: connections announcing 10 MiB messages
CONNS_C=${CONNS_C:-1000}    # C: idle connections from one address
HOLD=${HOLD:-20}            # seconds each RTMP attack lasts
URLS_N=${URLS_N:-20000}     # B: requests per URL phase
LIVE_BIN=${LIVE_BIN:-}      # a cmd/live binary to attack (default: built from this tree)
for v in CONNS_A CONNS_C HOLD URLS_N; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "run.sh: $v must be a whole number" >&2; exit 2; }
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/bench/out
RUN=$OUT/attack-run
RESULTS=$OUT/attack-results.txt
# shellcheck source=../lib.sh
source "$ROOT/bench/lib.sh"
mkdir -p "$RUN"
install_missing ffmpeg:ffmpeg ss:iproute2 curl:curl

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

log "building"
(cd "$ROOT" && go build -o "$RUN/rtmp" ./bench/attack/rtmp && go build -o "$RUN/urls" ./bench/attack/urls)
if [[ -n $LIVE_BIN ]]; then cp "$LIVE_BIN" "$RUN/live"; else (cd "$ROOT" && go build -o "$RUN/live" ./cmd/live); fi

RTMP_PORT=$(free_port)
HTTP_PORT=$(free_port)
BASE=http://127.0.0.1:$HTTP_PORT
"$RUN/live" -rtmp "127.0.0.1:$RTMP_PORT" -http "127.0.0.1:$HTTP_PORT" -transcode=false >"$RUN/live.log" 2>&1 &
LIVE=$!
PIDS+=("$LIVE")
wait_listening "$LIVE" "$HTTP_PORT" live
wait_listening "$LIVE" "$RTMP_PORT" live

# rss prints the server's resident memory in MB.
rss() { awk '/^VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$LIVE/status"; }

# sample_rss FILE records the RSS every 200 ms into FILE until killed.
sample_rss() { while kill -0 "$LIVE" 2>/dev/null; do rss >>"$1"; echo >>"$1"; sleep 0.2; done; }

# publish NAME: a real ffmpeg publisher, 6 s of 320x240 test video and
# tone; prints "yes" if it got in and its stream was served, else "no".
publish() {
  local name=$1 ok=no
  timeout 30 ffmpeg -hide_banner -nostdin -loglevel error -re \
    -f lavfi -i testsrc=size=320x240:rate=30 -f lavfi -i sine=frequency=440 -t 6 \
    -c:v libx264 -preset ultrafast -g 30 -c:a aac -f flv "rtmp://127.0.0.1:$RTMP_PORT/live/$name" \
    >"$RUN/ffmpeg-$name.log" 2>&1 &
  local ff=$! t
  for ((t = 0; t < 40; t++)); do
    if curl -fs --max-time 2 -o /dev/null "$BASE/live/$name/index.m3u8"; then ok=yes; break; fi
    sleep 0.25
  done
  wait "$ff" || ok=no
  echo "$ok"
}

# phase NAME COMMAND...: runs an attack while sampling the RSS and trying
# a publisher, and reports.
phase() {
  local name=$1
  shift
  local before samples=$RUN/rss-$name.txt peak after got
  before=$(rss)
  : >"$samples"
  sample_rss "$samples" &
  local sampler=$!
  "$@" >"$RUN/$name.log" 2>&1 &
  local attack=$!
  sleep 3 # the attack under way
  got=$(publish "probe$name")
  wait "$attack" || true
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  sleep 5 # what the attack left behind
  after=$(rss)
  peak=$(sort -n "$samples" | tail -n1)
  report "$(printf '%-28s RSS before %5s MB, peak %5s MB, after %5s MB; ffmpeg publisher got in: %s' "$name" "$before" "$peak" "$after" "$got")"
  sed 's/^/    /' "$RUN/$name.log" | tail -n 6 | tee -a "$RESULTS"
}

report "# bench/attack/run.sh $(date -u +%FT%TZ) ${LIVE_BIN:-$(git -C "$ROOT" rev-parse --short HEAD)} CONNS_A=$CONNS_A CONNS_C=$CONNS_C HOLD=$HOLD URLS_N=$URLS_N"
phase "A-huge-messages" "$RUN/rtmp" -addr "127.0.0.1:$RTMP_PORT" -mode bigmsg -conns "$CONNS_A" -duration "${HOLD}s"
phase "C-idle-connections" "$RUN/rtmp" -addr "127.0.0.1:$RTMP_PORT" -mode idle -conns "$CONNS_C" -duration "${HOLD}s"
phase "B-url-variants" "$RUN/urls" -base "$BASE" -n "$URLS_N" -duration 60s
report "refusals: $(curl -fs "$BASE/metrics" | grep -E '^live_(ingest_refused_total|pop_refused_total)' | awk '$2 > 0' | tr '\n' ' ')"
