#!/usr/bin/env bash
# Ingest benchmark: our origin (cmd/origin) against nginx-rtmp, in one run,
# on this machine, over loopback only. See README.md beside this file for
# what is measured and how to read the results.
#
#   bench/ingest/run.sh                      # the default, full run (~14 min)
#   D=20 MEM_SECONDS=60 bench/ingest/run.sh  # a quick check (~3 min)
#   SYSTEMS=ours,archive PHASES=cpu bench/ingest/run.sh  # ours with -archive against
#                                            # ours without, alternating (bench/archive)
#
# Every setting is an environment variable; the flags below set the same.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/ingest/run.sh [-n N] [-d D] [-w WARMUP] [-r ROUNDS]
                           [-m MEM_STREAMS] [-t MEM_SECONDS] [-p PHASES]

  -n N             streams published into each server in the CPU phase (10)
  -d D             measured seconds per server, after the warm-up (60)
  -w WARMUP        seconds between the start of the publishers and the start
                   mark of the CPU measurement (10)
  -r ROUNDS        CPU rounds; each round runs ours, then nginx (1)
  -m MEM_STREAMS   streams published into ours in the memory phase (20)
  -t MEM_SECONDS   length of the memory phase in seconds (600)
  -p PHASES        comma-separated: cpu, mem (cpu,mem)
  -s SYSTEMS       comma-separated, the servers of each CPU round, in order:
                   ours, archive (ours archiving every stream to
                   ARCHIVE_DIR, on disk), archive-nosync (the same with
                   -archive-fsync=false), nginx (ours,nginx)

Other environment variables: MEM_WARMUP (60: the sample that memory growth
is measured from), RECONNECT_EVERY (60), HTTP_EVERY (60), HTTP_BURST (200),
MEDIA_DIR (where nginx writes HLS/DASH; /dev/shm/... when writable),
ARCHIVE_DIR (where the archive system writes; bench/out/ingest-archive),
ORIGIN_BIN (a prebuilt binary to run instead of building ./cmd/origin),
STRICT=1 (exit 3 when a goal is missed).
EOF
}

N=${N:-10}
D=${D:-60}
WARMUP=${WARMUP:-10}
ROUNDS=${ROUNDS:-1}
MEM_STREAMS=${MEM_STREAMS:-20}
MEM_SECONDS=${MEM_SECONDS:-600}
MEM_WARMUP=${MEM_WARMUP:-60}
MEM_INTERVAL=10
RECONNECT_EVERY=${RECONNECT_EVERY:-60}
HTTP_EVERY=${HTTP_EVERY:-60}
HTTP_BURST=${HTTP_BURST:-200}
PHASES=${PHASES:-cpu,mem}
SYSTEMS=${SYSTEMS:-ours,nginx}
STRICT=${STRICT:-0}

while getopts "n:d:w:r:m:t:p:s:h" opt; do
  case $opt in
    n) N=$OPTARG ;;
    d) D=$OPTARG ;;
    w) WARMUP=$OPTARG ;;
    r) ROUNDS=$OPTARG ;;
    m) MEM_STREAMS=$OPTARG ;;
    t) MEM_SECONDS=$OPTARG ;;
    p) PHASES=$OPTARG ;;
    s) SYSTEMS=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
for v in N D WARMUP ROUNDS MEM_STREAMS MEM_SECONDS MEM_WARMUP RECONNECT_EVERY HTTP_EVERY HTTP_BURST; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "run.sh: $v must be a whole number, not '${!v}'" >&2; exit 2; }
done
((N >= 1 && D >= 1 && ROUNDS >= 1 && MEM_STREAMS >= 1)) || { echo "run.sh: N, D, ROUNDS and MEM_STREAMS must be at least 1" >&2; exit 2; }
# The growth is measured from the first sample at or after MEM_WARMUP; a
# short check gets a baseline halfway through instead of none.
if ((MEM_WARMUP >= MEM_SECONDS)); then
  MEM_WARMUP=$(((MEM_SECONDS / 2) / MEM_INTERVAL * MEM_INTERVAL))
fi
do_phase() { [[ ,$PHASES, == *,$1,* ]]; }
do_system() { [[ ,$SYSTEMS, == *,$1,* ]]; }
for s in ${SYSTEMS//,/ }; do
  [[ $s == ours || $s == archive || $s == archive-nosync || $s == nginx ]] || { echo "run.sh: SYSTEMS: unknown server '$s'" >&2; exit 2; }
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/bench/out
RUN=$OUT/ingest-run # logs and configs of the latest run
RESULTS=$OUT/ingest-results.txt
# shellcheck source=../lib.sh
source "$ROOT/bench/lib.sh"
SRC=$OUT/ingest-src-720p30-2500k-gop30-60s.flv
# ORIGIN_BIN runs a prebuilt binary (with cmd/origin's -rtmp and -http
# flags) instead of building ./cmd/origin, e.g. to compare two builds.
BIN=${ORIGIN_BIN:-$OUT/origin-bench}
HZ=$(getconf CLK_TCK)

# Reproduce line: the main settings always, the others when not default,
# so that the line runs the same benchmark wherever it is pasted.
REPRO="N=$N D=$D WARMUP=$WARMUP ROUNDS=$ROUNDS MEM_STREAMS=$MEM_STREAMS MEM_SECONDS=$MEM_SECONDS PHASES=$PHASES"
[[ $SYSTEMS == ours,nginx ]] || REPRO+=" SYSTEMS=$SYSTEMS"
((MEM_WARMUP == 60)) || REPRO+=" MEM_WARMUP=$MEM_WARMUP"
((RECONNECT_EVERY == 60)) || REPRO+=" RECONNECT_EVERY=$RECONNECT_EVERY"
((HTTP_EVERY == 60)) || REPRO+=" HTTP_EVERY=$HTTP_EVERY"
((HTTP_BURST == 200)) || REPRO+=" HTTP_BURST=$HTTP_BURST"
[[ -z ${MEDIA_DIR:-} ]] || REPRO+=" MEDIA_DIR=$MEDIA_DIR"
[[ -z ${ORIGIN_BIN:-} ]] || REPRO+=" ORIGIN_BIN=$ORIGIN_BIN"
[[ -z ${ARCHIVE_DIR:-} ]] || REPRO+=" ARCHIVE_DIR=$ARCHIVE_DIR"
ARCHIVE_DIR=${ARCHIVE_DIR:-$OUT/ingest-archive}
REPRO+=" bench/ingest/run.sh"


# ---------------------------------------------------------------- cleanup
# mine says whether pid is a running child of this shell. Every signal and
# liveness check goes through it: a pid that ended may already have been
# given to someone else's process (pid_max is often 32768).
mine() {
  local line f
  line=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -r -a f <<<"${line##*) }" # f[0] state, f[1] parent pid
  [[ ${f[1]} == "$$" && ${f[0]} != Z ]]
}

# signal SIG PID sends SIG to PID only while PID is ours.
signal() {
  mine "$2" || return 0
  kill "-$1" "$2" 2>/dev/null || true
}

PIDS=()       # every process this script started and may still be running
MEDIA_OWNED="" # nginx output directory this script made, removed at exit
cleanup() {
  local rc=$? p alive t
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do signal TERM "$p"; done
  for ((t = 0; t < 50; t++)); do # up to 10 s for graceful exits
    alive=0
    for p in "${PIDS[@]}"; do mine "$p" && alive=1; done
    ((alive)) || break
    sleep 0.2
  done
  for p in "${PIDS[@]}"; do signal KILL "$p"; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ -z $NAP_PID ]] || signal TERM "$NAP_PID"
  [[ -n $MEDIA_OWNED ]] && rm -rf "$MEDIA_OWNED"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted; stopping everything this script started"; exit 130' INT
trap 'log "terminated; stopping everything this script started"; exit 143' TERM

# stop ends one process this script started: TERM, then KILL after 10 s.
# Its stderr is closed so that bash does not print "Killed" for a
# publisher killed on purpose.
stop() {
  local p=$1 t
  signal TERM "$p"
  for ((t = 0; t < 50; t++)); do
    mine "$p" || break
    sleep 0.2
  done
  signal KILL "$p"
  wait "$p" 2>/dev/null || true
} 2>/dev/null


rtmp_module() {
  local f
  if [[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ]]; then
    echo /usr/lib/nginx/modules/ngx_rtmp_module.so
    return
  fi
  for f in /etc/nginx/modules-enabled/*rtmp*.conf; do
    [[ -e $f ]] || continue
    sed -n 's/^[[:space:]]*load_module[[:space:]]\+\([^;]*\);.*/\1/p' "$f" | head -n1
    return
  done
  die "nginx rtmp module not found (/usr/lib/nginx/modules/ngx_rtmp_module.so, /etc/nginx/modules-enabled)"
}

# make_source encodes the test input once; later runs reuse it.
make_source() {
  if [[ -s $SRC ]] && ffprobe -v error "$SRC" >/dev/null 2>&1; then
    return
  fi
  log "encoding the test input once: $SRC (about a minute)"
  # testsrc2 alone compresses far below 2.5 Mb/s; light temporal noise
  # lets the rate control spend the bit rate a camera picture would.
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t 60 \
    -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p \
    -b:v 2500k -maxrate 2500k -bufsize 2500k \
    -g 30 -keyint_min 30 -sc_threshold 0 \
    -c:a aac -b:a 128k -ac 2 \
    -f flv "$SRC.tmp"
  mv "$SRC.tmp" "$SRC"
}

# ---------------------------------------------------------------- helpers


# cpu_split prints the user and system CPU clock ticks used so far by pid
# and its live children, plus those of its children already waited for.
cpu_split() {
  local pid=$1 user=0 sys=0 p line f
  for p in "$pid" $(pgrep -P "$pid" || true); do
    line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    # Fields after the command name, which is in parentheses and may
    # hold spaces: f[0] is field 3 (state), so utime (14) is f[11].
    read -r -a f <<<"${line##*) }"
    user=$((user + f[11]))
    sys=$((sys + f[12]))
    if [[ $p == "$pid" ]]; then
      user=$((user + f[13]))
      sys=$((sys + f[14]))
    fi
  done
  echo "$user $sys"
}

# cpu_ticks prints user+system clock ticks as cpu_split counts them.
cpu_ticks() {
  local user sys
  read -r user sys < <(cpu_split "$1")
  echo $((user + sys))
}

# pids_ticks sums cpu_ticks over a list of pids (the publishers).
pids_ticks() {
  local total=0 p
  for p in "$@"; do total=$((total + $(cpu_ticks "$p"))); done
  echo "$total"
}

# sys_busy prints busy and total clock ticks of the whole machine.
sys_busy() {
  local user nice system idle iowait irq softirq steal rest
  read -r _ user nice system idle iowait irq softirq steal rest </proc/stat
  echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

now() { echo "$EPOCHREALTIME"; }
fmt() { awk -v x="$1" -v f="$2" 'BEGIN { printf f, x }'; }

# nap sleeps in the background so that INT and TERM are acted on at once.
NAP_PID=""
nap() {
  sleep "$1" &
  NAP_PID=$!
  wait "$NAP_PID" || true
  NAP_PID=""
}

# start_pub starts one publisher; its pid is left in PUB_PID.
start_pub() {
  local url=$1 logf=$2
  ffmpeg -nostdin -hide_banner -loglevel warning -re -stream_loop -1 -i "$SRC" \
    -c copy -f flv "$url" >>"$logf" 2>&1 &
  PUB_PID=$!
  PIDS+=("$PUB_PID")
}

# check_pubs fails when a publisher died: a dead publisher would make the
# server look cheaper than it is.
check_pubs() {
  local what=$1 logdir=$2 i
  shift 2
  local pids=("$@")
  for i in "${!pids[@]}"; do
    if ! mine "${pids[$i]}"; then
      tail -n 5 "$logdir/pub-s$i.log" >&2 || true
      die "$what: publisher of s$i exited (log: $logdir/pub-s$i.log)"
    fi
  done
}

# metric prints the sum of the samples of a metric in a /metrics dump.
metric() {
  awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2; n++ } END { if (n) printf "%.0f", s; else printf "0" }' "$2"
}

# hist_quantile prints "q_seconds count fraction_le_limit" of the
# availability histogram (or of HIST, a histogram's bucket series with
# its labels up to "le", e.g. archive_write_seconds_bucket{kind="segment")
# between two /metrics dumps (the first may be /dev/null), interpolating
# inside a bucket as Prometheus' histogram_quantile does. A quantile in
# the +Inf bucket prints as "inf".
hist_quantile() {
  awk -v q="$3" -v lim="$4" -v hist="${5:-live_origin_segment_availability_seconds_bucket}" '
    function le(s,   a, k) { k = split(s, a, "le=\""); split(a[k], a, "\""); return a[1] }
    index($1, hist) == 1 {
      if (FILENAME == ARGV[1]) { base[le($1)] = $2; next }
      n++; bound[n] = le($1); cum[n] = $2 - base[le($1)]
    }
    END {
      if (n == 0) { print "nan 0 nan"; exit }
      total = cum[n]
      if (total <= 0) { print "nan 0 nan"; exit }
      rank = q * total; prev = 0; prevb = 0; res = "inf"; frac = "nan"
      for (i = 1; i <= n; i++) {
        if (bound[i] != "+Inf" && bound[i] + 0 == lim + 0) frac = cum[i] / total
        if (res == "inf" && cum[i] >= rank) {
          if (bound[i] == "+Inf") break
          res = prevb + (bound[i] - prevb) * (rank - prev) / (cum[i] - prev)
        }
        if (bound[i] != "+Inf") { prev = cum[i]; prevb = bound[i] }
      }
      printf "%s %d %s\n", res, total, frac
    }' "$1" "$2"
}

# ---------------------------------------------------------------- servers
ORIGIN_PID=""
ORIGIN_HTTP=""
ORIGIN_RTMP=""
# start_origin LOG [FLAGS...] starts our origin with FLAGS added.
start_origin() {
  local logf=$1 rp hp
  shift
  rp=$(free_port)
  hp=$(free_port)
  "$BIN" -rtmp "127.0.0.1:$rp" -http "127.0.0.1:$hp" -transcode=false "$@" >"$logf" 2>&1 &
  ORIGIN_PID=$!
  PIDS+=("$ORIGIN_PID")
  wait_listening "$ORIGIN_PID" "$rp" "our origin (rtmp)"
  wait_listening "$ORIGIN_PID" "$hp" "our origin (http)"
  ORIGIN_RTMP="rtmp://127.0.0.1:$rp/live"
  ORIGIN_HTTP="http://127.0.0.1:$hp"
}

NGINX_PID=""
NGINX_RTMP=""
start_nginx() {
  local dir=$1 rp
  rp=$(free_port)
  mkdir -p "$dir/logs" "$MEDIA/hls" "$MEDIA/dash"
  rm -rf "${MEDIA:?}/hls/"* "${MEDIA:?}/dash/"*
  # nginx's workers run as an unprivileged user when started by root.
  chmod 0777 "$MEDIA/hls" "$MEDIA/dash"
  cat >"$dir/nginx.conf" <<EOF
# Written by bench/ingest/run.sh; nginx-rtmp as the reference ingest.
load_module $RTMP_MODULE;
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
rtmp {
    server {
        listen 127.0.0.1:$rp;
        chunk_size 4096;
        application live {
            live on;
            record off;
            hls on;
            hls_path $MEDIA/hls;
            hls_fragment 1s;
            hls_playlist_length 30s;
            dash on;
            dash_path $MEDIA/dash;
            dash_fragment 1s;
            dash_playlist_length 30s;
        }
    }
}
EOF
  nginx -t -q -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" 2>"$dir/logs/configtest.log" ||
    die "nginx rejected its config: $(cat "$dir/logs/configtest.log")"
  nginx -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" >"$dir/logs/stdout.log" 2>&1 &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  wait_listening "$NGINX_PID" "$rp" "nginx-rtmp"
  NGINX_RTMP="rtmp://127.0.0.1:$rp/live"
}

# ours_live prints how many streams s0..s{n-1} our origin lists as live
# with segments in every rendition.
ours_live() {
  curl -fsS --max-time 5 "$ORIGIN_HTTP/api/streams" 2>/dev/null | jq -r --argjson n "$1" '
    [.streams[] | select((.name | test("^s[0-9]+$")) and ((.name[1:] | tonumber) < $n)
      and .live and (.renditions | length) >= 2 and all(.renditions[]; .segments > 0))] | length' 2>/dev/null || echo 0
}

# nginx_live prints how many streams have an HLS playlist listing a
# fragment and a DASH manifest on disk.
nginx_live() {
  local n=$1 i c=0
  for ((i = 0; i < n; i++)); do
    [[ -s $MEDIA/hls/s$i.m3u8 && -s $MEDIA/dash/s$i.mpd ]] || continue
    grep -q '\.ts$' "$MEDIA/hls/s$i.m3u8" 2>/dev/null || continue
    c=$((c + 1))
  done
  echo "$c"
}

# check_ours_output fails unless every stream is live with segments and its
# HLS playlists, DASH manifest and newest segment are served.
check_ours_output() {
  local n=$1 live i mv media seg
  live=$(ours_live "$n")
  ((live == n)) || {
    curl -sS --max-time 5 "$ORIGIN_HTTP/api/streams" >"$RUN/api-streams-fail.json" 2>&1 || true
    die "ours: /api/streams lists $live of $n streams live with segments ($RUN/api-streams-fail.json)"
  }
  for ((i = 0; i < n; i++)); do
    mv=$(curl -fsS --max-time 5 "$ORIGIN_HTTP/live/s$i/index.m3u8") || die "ours: no HLS playlist for s$i"
    curl -fsS --max-time 5 -o /dev/null "$ORIGIN_HTTP/live/s$i/manifest.mpd" || die "ours: no DASH manifest for s$i"
  done
  media=$(grep -v '^#' <<<"$mv" | grep . | head -n1)
  seg=$(curl -fsS --max-time 5 "$ORIGIN_HTTP/live/s$((n - 1))/$media" | grep -v '^#' | grep . | tail -n1) ||
    die "ours: no media playlist for s$((n - 1))"
  curl -fsS --max-time 5 -o /dev/null "$ORIGIN_HTTP/live/s$((n - 1))/${media%/*}/$seg" ||
    die "ours: newest segment of s$((n - 1)) not served"
}

check_nginx_output() {
  local n=$1 live
  live=$(nginx_live "$n")
  ((live == n)) || {
    ls -la "$MEDIA/hls" "$MEDIA/dash" >"$RUN/nginx-media-fail.txt" 2>&1 || true
    die "nginx: $live of $n streams have an .m3u8 with fragments and an .mpd ($RUN/nginx-media-fail.txt)"
  }
}

# log_problems prints counts of warnings and errors in our origin's log,
# and of publishers it dropped for a read timeout, which it logs as INFO.
log_problems() {
  local logf=$1 e w t
  e=$(grep -c 'level=ERROR' "$logf" || true)
  w=$(grep -c 'level=WARN' "$logf" || true)
  t=$(grep 'publisher disconnected' "$logf" | grep -c 'i/o timeout' || true)
  echo "$e errors, $w warnings, $t publishers dropped for a read timeout"
}

# ---------------------------------------------------------------- CPU phase
# cpu_phase SERVER ROUND runs N publishers into one server and measures it.
# It sets CPU_<server> (CPU-s per stream-second of this round) and appends
# to the per-server totals.
declare -A TOT_TICKS=([ours]=0 [archive]=0 [archive-nosync]=0 [nginx]=0) TOT_SECS=([ours]=0 [archive]=0 [archive-nosync]=0 [nginx]=0)
declare -A OTHER_CORES=() PUB_CORES=()
declare -A AVAIL_P99=() AVAIL_FRAC=() # by server, of its last round
cpu_phase() {
  local srv=$1 round=$2 dir=$RUN/cpu-$1-r$2 url pid i ours=0
  [[ $srv == ours || $srv == archive* ]] && ours=1
  mkdir -p "$dir"
  if [[ $srv == archive* ]]; then
    # A fresh archive each round, on disk (not tmpfs): what the disk costs.
    rm -rf "${ARCHIVE_DIR:?}/$srv-r$round"
    local sync=true
    [[ $srv == archive-nosync ]] && sync=false
    start_origin "$dir/origin.log" -archive "$ARCHIVE_DIR/$srv-r$round" -archive-fsync=$sync
    pid=$ORIGIN_PID url=$ORIGIN_RTMP
  elif ((ours)); then
    start_origin "$dir/origin.log"
    pid=$ORIGIN_PID url=$ORIGIN_RTMP
  else
    start_nginx "$dir"
    pid=$NGINX_PID url=$NGINX_RTMP
  fi
  log "$srv (round $round): $N publishers, warm-up ${WARMUP}s, then ${D}s measured"
  local pubs=()
  for ((i = 0; i < N; i++)); do
    start_pub "$url/s$i" "$dir/pub-s$i.log"
    pubs+=("$PUB_PID")
  done
  nap "$WARMUP"
  check_pubs "$srv" "$dir" "${pubs[@]}"
  if ((ours)); then
    local live
    live=$(ours_live "$N")
    ((live == N)) || die "ours: after the ${WARMUP}s warm-up, $live of $N streams are live with segments"
    curl -fsS --max-time 5 "$ORIGIN_HTTP/metrics" >"$dir/metrics-start.txt" || die "ours: /metrics failed"
  else
    check_nginx_output "$N"
  fi

  # Start mark.
  local t0 c0 p0 s0 tot0
  t0=$(now)
  local u0 k0 u1 k1
  read -r u0 k0 < <(cpu_split "$pid")
  c0=$((u0 + k0))
  p0=$(pids_ticks "${pubs[@]}")
  read -r s0 tot0 < <(sys_busy)
  nap "$D"
  # End mark.
  local t1 c1 p1 s1 tot1
  t1=$(now)
  read -r u1 k1 < <(cpu_split "$pid")
  c1=$((u1 + k1))
  p1=$(pids_ticks "${pubs[@]}")
  read -r s1 tot1 < <(sys_busy)

  check_pubs "$srv" "$dir" "${pubs[@]}"
  if ((ours)); then
    curl -fsS --max-time 5 "$ORIGIN_HTTP/metrics" >"$dir/metrics-end.txt" || die "ours: /metrics failed"
    check_ours_output "$N"
  else
    check_nginx_output "$N"
  fi

  local secs ticks per cores
  secs=$(calc "$t1 - $t0")
  ticks=$((c1 - c0))
  per=$(calc "$ticks / $HZ / ($N * $secs)")
  TOT_TICKS[$srv]=$((TOT_TICKS[$srv] + ticks))
  TOT_SECS[$srv]=$(calc "${TOT_SECS[$srv]} + $secs")
  # Cores busy on average: the server, the publishers, and everything else
  # on the machine (other users' work shows up here and skews results).
  local busy_cores
  cores=$(calc "$ticks / $HZ / $secs")
  busy_cores=$(calc "($s1 - $s0) / ($tot1 - $tot0) * $(nproc)")
  PUB_CORES[$srv-$round]=$(calc "($p1 - $p0) / $HZ / $secs")
  OTHER_CORES[$srv-$round]=$(calc "$busy_cores - $cores - ($p1 - $p0) / $HZ / $secs")
  report "$(printf '%-6s round %d: %5.2f CPU-s (user %.2f, system %.2f) over %5.1f s with %d streams = %.5f CPU-s per stream-second' \
    "$srv" "$round" "$(calc "$ticks / $HZ")" "$(calc "($u1 - $u0) / $HZ")" "$(calc "($k1 - $k0) / $HZ")" "$secs" "$N" "$per")"
  report "$(printf '       cores busy on average: this server %.3f, its publishers %.3f, rest of machine %.3f' \
    "$cores" "${PUB_CORES[$srv-$round]}" "${OTHER_CORES[$srv-$round]}")"

  if ((ours)); then
    local q cnt frac segs
    read -r q cnt frac < <(hist_quantile "$dir/metrics-start.txt" "$dir/metrics-end.txt" 0.99 0.02)
    segs=$(($(metric live_origin_segments_total "$dir/metrics-end.txt") - $(metric live_origin_segments_total "$dir/metrics-start.txt")))
    AVAIL_P99[$srv]=$q AVAIL_FRAC[$srv]=$frac
    report "$(printf '       segment availability over the measured window: p99 %s over %d segments (%s%% at or under 20 ms); %d segments packaged (expected about %d)' \
      "$(ms "$q")" "$cnt" "$(pct "$frac")" "$segs" "$(calc "int($N * $secs * 2)")")"
    read -r q cnt frac < <(hist_quantile /dev/null "$dir/metrics-end.txt" 0.99 0.02)
    report "       segment availability since start (incl. warm-up): p99 $(ms "$q") over $cnt segments"
    [[ $srv == archive* ]] && archive_report "$dir"
    report "       our log: $(log_problems "$dir/origin.log")"
    for i in "${pubs[@]}"; do stop "$i"; done
    stop "$ORIGIN_PID"
  else
    local errs
    errs=$(grep -c '\[error\]\|\[alert\]\|\[emerg\]\|\[crit\]' "$dir/logs/error.log" || true)
    report "       nginx error.log: $errs error lines"
    for i in "${pubs[@]}"; do stop "$i"; done
    stop "$NGINX_PID"
  fi
}

# archive_report prints what the archive did over the measured window
# of the round in DIR: segments written, their write latency, drops,
# failures, and the queue at the end.
archive_report() {
  local dir=$1 s e q written
  s=$dir/metrics-start.txt e=$dir/metrics-end.txt
  written=$(($(metric 'archive_written_total{kind="segment"}' "$e") - $(metric 'archive_written_total{kind="segment"}' "$s")))
  read -r q _ < <(hist_quantile "$s" "$e" 0.99 0.02 'archive_write_seconds_bucket{kind="segment"')
  report "$(printf '       archive: %d segments written (%s MB), write p99 %s; dropped %d, failed writes %d, queue at the end %d items' \
    "$written" "$(fmt "$(calc "($(metric 'archive_written_bytes_total{kind="segment"}' "$e") - $(metric 'archive_written_bytes_total{kind="segment"}' "$s")) / 1e6")" %.1f)" \
    "$(ms "$q")" "$(metric archive_dropped_total "$e")" "$(metric archive_write_errors_total "$e")" "$(metric archive_queue_depth "$e")")"
  ARCHIVE_DROPPED=$((ARCHIVE_DROPPED + $(metric archive_dropped_total "$e")))
}
ARCHIVE_DROPPED=0

ms() {
  case $1 in
    inf) echo "> 250 ms (+Inf bucket)" ;;
    nan | "") echo "n/a" ;;
    *) fmt "$(calc "$1 * 1000")" '%.2f ms' ;;
  esac
}
pct() {
  case $1 in
    nan | "") echo "n/a" ;;
    *) fmt "$(calc "$1 * 100")" '%.2f' ;;
  esac
}

# ---------------------------------------------------------------- memory phase
MEM_GROWTH="" MEM_GROWTH_HALF="" MEM_TARGET_HALF="" MEM_HALF_T=""
FAILURES=() # checks that failed where the run could still report numbers
mem_phase() {
  local dir=$RUN/mem i
  mkdir -p "$dir"
  start_origin "$dir/origin.log"
  log "memory: ours with $MEM_STREAMS streams for ${MEM_SECONDS}s (reconnect every ${RECONNECT_EVERY}s, $HTTP_BURST requests every ${HTTP_EVERY}s)"
  local pubs=()
  for ((i = 0; i < MEM_STREAMS; i++)); do
    start_pub "$ORIGIN_RTMP/s$i" "$dir/pub-s$i.log"
    pubs+=("$PUB_PID")
  done

  report ""
  report "memory phase: $MEM_STREAMS streams into ours, RSS every ${MEM_INTERVAL}s for ${MEM_SECONDS}s"
  report "  (heap: Go heap in use; GC target: the heap size that triggers the next GC, twice the live heap at the last GC)"
  report "$(printf '  %6s %8s %8s %8s %9s %10s %7s %6s %8s  %s' t clock RSS_MB heap_MB target_MB goroutines live reconn requests events)"
  local start next=0 reconnects=0 burst_pid="" bursts=0 rss heap target gor live note="" sig wait_s
  local -a gone=() # publishers seen exited on their own
  : >"$dir/http-codes.txt"
  : >"$dir/samples.txt"
  start=$(now)
  # One tick every 5 s: a sample every MEM_INTERVAL, then the events due.
  # Events are noted on the next sample's line.
  while :; do
    if ((next % MEM_INTERVAL == 0)); then
      curl -fsS --max-time 5 "$ORIGIN_HTTP/metrics" >"$dir/metrics-now.txt" 2>/dev/null || : >"$dir/metrics-now.txt"
      rss=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$ORIGIN_PID/status" 2>/dev/null) || rss=""
      [[ -n $rss ]] || die "ours exited during the memory phase (log: $dir/origin.log)"
      heap=$(calc "$(metric go_memstats_heap_inuse_bytes "$dir/metrics-now.txt") / 1048576")
      target=$(calc "$(metric go_memstats_next_gc_bytes "$dir/metrics-now.txt") / 1048576")
      gor=$(metric go_goroutines "$dir/metrics-now.txt")
      live=$(ours_live "$MEM_STREAMS")
      # A publisher that exited by itself means ours dropped it (the
      # reason is in its log); it is not restarted, so that it shows.
      for i in "${!pubs[@]}"; do
        if [[ -z ${gone[i]:-} ]] && ! mine "${pubs[$i]}"; then
          gone[i]=1
          note+="s$i publisher EXITED: $(grep "stream=s$i " "$dir/origin.log" | grep 'disconnected' | tail -n1 | sed -n 's/.*reason=//p'); "
        fi
      done
      report "$(printf '  %6s %8s %8.1f %8.1f %9.1f %10s %7s %6d %8d  %s' "${next}s" "$(date +%T)" "$rss" "$heap" "$target" "$gor" "$live/$MEM_STREAMS" "$reconnects" "$(wc -l <"$dir/http-codes.txt")" "$note")"
      note=""
      echo "$next $rss $target $gor" >>"$dir/samples.txt"
    fi
    ((next >= MEM_SECONDS)) && break
    # Reconnect one publisher: alternately a clean exit (TERM: ffmpeg
    # closes the stream) and an abrupt one (KILL: the socket just drops).
    if ((next > 0 && next % RECONNECT_EVERY == 0)); then
      i=$((reconnects % MEM_STREAMS))
      sig=TERM
      ((reconnects % 2)) && sig=KILL
      signal "$sig" "${pubs[$i]}"
      stop "${pubs[$i]}"
      start_pub "$ORIGIN_RTMP/s$i" "$dir/pub-s$i.log"
      pubs[i]=$PUB_PID
      reconnects=$((reconnects + 1))
      note+="${next}s: s$i reconnected ($sig); "
    fi
    # A burst of player requests, half a period after each reconnect.
    if ((next % HTTP_EVERY == HTTP_EVERY / 2)); then
      if [[ -n $burst_pid ]] && mine "$burst_pid"; then
        note+="${next}s: burst skipped, previous one still running; "
      else
        burst "$ORIGIN_HTTP" "$MEM_STREAMS" "$HTTP_BURST" "$dir/http-codes.txt" &
        burst_pid=$!
        PIDS+=("$burst_pid")
        bursts=$((bursts + 1))
        note+="${next}s: HTTP burst $bursts; "
      fi
    fi
    next=$((next + MEM_INTERVAL / 2))
    wait_s=$(calc "$start + $next - $(now)")
    if (($(calc "$wait_s > 0"))); then nap "$wait_s"; fi
  done
  if [[ -n $burst_pid ]]; then wait "$burst_pid" 2>/dev/null || true; fi

  # Still all live after the reconnects? Reported after the numbers,
  # which are still worth reading, and the run then fails.
  live=$(ours_live "$MEM_STREAMS")
  ((live == MEM_STREAMS)) || FAILURES+=("ours: after the memory phase $live of $MEM_STREAMS streams are live with segments")
  for i in "${!pubs[@]}"; do
    mine "${pubs[$i]}" ||
      FAILURES+=("memory phase: the publisher of s$i exited; ours logged: $(grep "stream=s$i " "$dir/origin.log" | grep 'disconnected' | tail -n1 | sed -n 's/.*reason=//p')")
  done

  local codes publishes half=$(((MEM_SECONDS / 2) / MEM_INTERVAL * MEM_INTERVAL))
  codes=$(awk '{ print $1 }' "$dir/http-codes.txt" | sort | uniq -c | awk '{ printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1 }')
  local slow
  slow=$(awk '$2 > 1 { n++ } $2 > max { max = $2 } END { printf "%d over 1 s, slowest %.3f s", n, max }' "$dir/http-codes.txt")
  curl -fsS --max-time 5 "$ORIGIN_HTTP/metrics" >"$dir/metrics-end.txt" || die "ours: /metrics failed"
  publishes=$(metric live_origin_publishes_total "$dir/metrics-end.txt")
  # growth FROM COLUMN prints "from_t from to_t to delta pct trend" for the
  # samples from FROM seconds on: end points, and the least-squares slope
  # per 10 min, which depends less on where the GC happened to be.
  growth() {
    awk -v from="$1" -v col="$2" '$1 >= from {
        if (n == 0) { t0 = $1; v0 = $col }
        n++; t1 = $1; v1 = $col; sx += $1; sy += $col; sxx += $1 * $1; sxy += $1 * $col
      }
      END {
        if (n < 2) { print "nan nan nan nan nan nan nan"; exit }
        d = n * sxx - sx * sx
        printf "%d %.1f %d %.1f %+.1f %+.1f %+.1f\n", t0, v0, t1, v1, v1 - v0, (v0 ? (v1 - v0) / v0 * 100 : 0), (d ? (n * sxy - sx * sy) / d * 600 : 0)
      }' "$dir/samples.txt"
  }
  local ft fv tt tv dv dp tr
  read -r ft fv tt tv dv dp tr < <(growth "$MEM_WARMUP" 2)
  MEM_GROWTH="$dv MB ($dp%)"
  report "  RSS growth from t=${ft}s to t=${tt}s: $fv -> $tv MB = $dv MB ($dp%); trend $tr MB per 10 min"
  read -r ft fv tt tv dv dp tr < <(growth "$half" 2)
  MEM_GROWTH_HALF="$dv MB ($dp%)" MEM_HALF_T=$ft
  report "  RSS growth over the second half, t=${ft}s to t=${tt}s: $fv -> $tv MB = $dv MB ($dp%); trend $tr MB per 10 min"
  read -r ft fv tt tv dv dp tr < <(growth "$half" 3)
  MEM_TARGET_HALF="$dv MB ($dp%)"
  report "  GC target over the second half, t=${ft}s to t=${tt}s: $fv -> $tv MB = $dv MB ($dp%); trend $tr MB per 10 min"
  report "  goroutines: $(awk '{ print $4 }' "$dir/samples.txt" | sort -n | uniq -c | awk '{ printf "%s%s in %d samples", (NR > 1 ? ", " : ""), $2, $1 }')"
  report "  reconnects: $reconnects (publishes counted by ours: $publishes); HTTP requests: $(wc -l <"$dir/http-codes.txt") in $bursts bursts ($codes; $slow; each in $dir/http-codes.txt)"
  report "  our log: $(log_problems "$dir/origin.log")"
  for i in "${pubs[@]}"; do stop "$i"; done
  stop "$ORIGIN_PID"
}

# burst makes about COUNT player requests round-robin over the streams:
# multivariant playlist, MPD, both media playlists, the video init segment
# and the newest segments, as a player joining the live edge does. Each
# status code is appended to CODES; every request is bounded by 5 s.
burst() {
  local base=$1 n=$2 count=$3 codes=$4 made=0 i=0 s mv vpl apl vdir adir seg tmp
  tmp=$(mktemp)
  get() { # get URL [save]: one request, its status to CODES; a body
    # other than a 200's is not kept, so nothing is parsed from an error.
    local code secs
    : >"$tmp"
    read -r code secs < <(curl -s --max-time 5 -o "${2:-/dev/null}" -w '%{http_code} %{time_total}\n' "$1" 2>/dev/null || true)
    echo "${code:-000} ${secs:-5} $(date +%T) $1" >>"$codes"
    [[ $code == 200 ]] || : >"$tmp"
    made=$((made + 1))
  }
  while ((made < count)); do
    s="s$((i % n))"
    i=$((i + 1))
    get "$base/live/$s/index.m3u8" "$tmp"
    mv=$(grep -v '^#' "$tmp" | grep . | head -n1 || true)
    vdir=${mv%/*}
    adir=$(sed -n 's/.*TYPE=AUDIO.*URI="\([^"]*\)\/index.m3u8".*/\1/p' "$tmp" | head -n1 || true)
    : >"$tmp"
    ((made < count)) && get "$base/live/$s/manifest.mpd"
    [[ -n $vdir ]] || continue
    ((made < count)) && get "$base/live/$s/$vdir/index.m3u8" "$tmp"
    vpl=$(grep -v '^#' "$tmp" | grep . | tail -n3 || true)
    ((made < count)) && get "$base/live/$s/$vdir/init.mp4"
    for seg in $vpl; do ((made < count)) && get "$base/live/$s/$vdir/$seg"; done
    if [[ -n $adir ]]; then
      : >"$tmp"
      ((made < count)) && get "$base/live/$s/$adir/index.m3u8" "$tmp"
      apl=$(grep -v '^#' "$tmp" | grep . | tail -n2 || true)
      for seg in $apl; do ((made < count)) && get "$base/live/$s/$adir/$seg"; done
    fi
  done
  rm -f "$tmp"
}

# ---------------------------------------------------------------- main
main() {
  install_missing ffmpeg:ffmpeg ffprobe:ffmpeg jq:jq curl:curl ss:iproute2
  if do_system nginx; then
    install_missing nginx:nginx /usr/lib/nginx/modules/ngx_rtmp_module.so:libnginx-mod-rtmp
    RTMP_MODULE=$(rtmp_module)
  fi
  mkdir -p "$OUT"
  rm -rf "$RUN"
  mkdir -p "$RUN"
  : >"$RESULTS"

  if [[ -n ${MEDIA_DIR:-} ]]; then
    MEDIA=$MEDIA_DIR
    mkdir -p "$MEDIA"
  elif [[ -d /dev/shm && -w /dev/shm ]]; then
    MEDIA=$(mktemp -d /dev/shm/ingest-bench.XXXXXX)
    MEDIA_OWNED=$MEDIA
  else
    MEDIA=$RUN/nginx-media
    mkdir -p "$MEDIA"
  fi
  chmod 0755 "$MEDIA"

  if [[ -n ${ORIGIN_BIN:-} ]]; then
    [[ -x $BIN ]] || die "ORIGIN_BIN=$BIN is not an executable"
    BIN=$(realpath "$BIN")
    log "using the prebuilt $BIN"
  else
    log "building our origin"
    (cd "$ROOT" && go build -o "$BIN" ./cmd/origin)
  fi
  make_source

  local srcinfo others
  srcinfo=$(ffprobe -v error -show_entries format=duration,bit_rate -of default=nw=1:nk=1 "$SRC" | paste -sd' ' |
    awk '{ printf "%.1f s, %.2f Mb/s total", $1, $2 / 1e6 }')
  report "ingest benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
  [[ -n ${ORIGIN_BIN:-} ]] && report "  ours:  prebuilt $BIN"
  # The tree can change under a long run (and between runs): name the
  # binary by its hash, and the uncommitted files it may have been built with.
  local dirty
  dirty=$(cd "$ROOT" && git status --porcelain -- . ':!bench' 2>/dev/null | awk '{ print $2 }' | paste -sd' ' | cut -c1-300)
  report "  tree:  $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')${dirty:+ + uncommitted: $dirty}, $(go version | awk '{ print $3 }')"
  report "  binary: $BIN, sha256 $(sha256sum "$BIN" | cut -c1-16)"
  do_system nginx && report "  nginx: $(nginx -v 2>&1 | sed 's/.*version: //'), rtmp module $(dpkg-query -W -f '${Version}' libnginx-mod-rtmp 2>/dev/null || echo '?'), output in $MEDIA"
  do_system archive && report "  archive: ours with -archive $ARCHIVE_DIR/rN ($(df -PT "$(dirname "$ARCHIVE_DIR")" | awk 'NR == 2 { print $2 " on " $1 }'), fsync on), a fresh one each round"
  report "  input: $SRC (1280x720 30 fps H.264 2.5 Mb/s, keyframe every 1 s, AAC 128k; $srcinfo), looped with ffmpeg -re -c copy"
  # Other work on the machine skews a CPU comparison: say how much there is.
  local b0 t0 b1 t1 load
  read -r b0 t0 < <(sys_busy)
  nap 3
  read -r b1 t1 < <(sys_busy)
  load=$(calc "($b1 - $b0) / ($t1 - $t0) * $(nproc)")
  report "  machine busy before the start: $(fmt "$load" %.2f) of $(nproc) cores"
  if (($(calc "$load > 0.2"))); then
    others=$(ps -eo pid=,pcpu=,args= --sort=-pcpu | head -n 3 | cut -c1-100 | paste -sd';')
    report "  WARNING: the machine is not idle (top by lifetime %CPU: $others)."
    report "           CPU-seconds are counted per process, but contention still skews them; see 'rest of machine'."
  fi
  report ""

  if do_phase cpu; then
    report "CPU phase: N=$N streams, warm-up ${WARMUP}s, ${D}s measured per server, $ROUNDS round(s) of $SYSTEMS, servers one at a time"
    local r srv
    for ((r = 1; r <= ROUNDS; r++)); do
      for srv in ${SYSTEMS//,/ }; do cpu_phase "$srv" "$r"; done
    done
  fi
  if do_phase mem; then
    mem_phase
  fi

  # ---- summary
  local ours_per="" nginx_per="" ratio="" verdict_cpu="-" verdict_avail="-" missed=0
  # per prints a server's CPU-seconds per stream-second over its rounds.
  per() { if (($(calc "${TOT_SECS[$1]} > 0"))); then calc "${TOT_TICKS[$1]} / $HZ / ($N * ${TOT_SECS[$1]})"; else echo nan; fi; }
  report ""
  report "summary"
  if do_phase cpu && do_system nginx; then
    report "$(printf '  %-44s %-20s %-16s %-8s %s' metric ours nginx-rtmp goal verdict)"
    ours_per=$(per ours)
    nginx_per=$(per nginx)
    if [[ $ours_per != nan ]] && (($(calc "${TOT_TICKS[nginx]} > 0"))); then
      ratio=$(calc "$ours_per / $nginx_per")
      if (($(calc "$ratio <= 0.7"))); then verdict_cpu=PASS; else verdict_cpu=MISS missed=1; fi
    fi
    report "$(printf '  %-44s %-20s %-16s %-8s %s' "CPU-s per stream-second (N=$N)" "$(fmt "$ours_per" %.5f)" "$(fmt "$nginx_per" %.5f)" "" "")"
    report "$(printf '  %-44s %-20s %-16s %-8s %s' "  = % of one core per stream" "$(fmt "$(calc "$ours_per * 100")" %.2f)%" "$(fmt "$(calc "$nginx_per * 100")" %.2f)%" "" "")"
    report "$(printf '  %-44s %-20s %-16s %-8s %s' "CPU ratio ours/nginx" "${ratio:+$(fmt "$ratio" %.3f)}" "" "<= 0.7" "$verdict_cpu")"
    local p99=${AVAIL_P99[ours]:-}
    if [[ $p99 != nan && -n $p99 ]]; then
      if [[ $p99 != inf ]] && (($(calc "$p99 <= 0.02"))); then verdict_avail=PASS; else verdict_avail=MISS missed=1; fi
    fi
    report "$(printf '  %-44s %-20s %-16s %-8s %s' "segment availability p99 (last round)" "$(ms "$p99")" "n/a" "<= 20 ms" "$verdict_avail")"
    report "$(printf '  %-44s %-20s %-16s' "  segments listed within 20 ms" "$(pct "${AVAIL_FRAC[ours]:-}")%" "n/a")"
  fi
  local asrv
  for asrv in archive archive-nosync; do
    do_phase cpu && do_system $asrv && do_system ours || continue
    # Archiving must cost at most a tenth more CPU, and leave when
    # segments are listed as it was: p99 at most a quarter (plus 0.1 ms,
    # below what the histogram resolves) later, and within 20 ms.
    local off on aratio="" averdict=- pverdict=- poff=${AVAIL_P99[ours]:-} pon=${AVAIL_P99[$asrv]:-} dverdict=PASS
    off=$(per ours) on=$(per $asrv)
    if [[ $off != nan && $on != nan ]]; then
      aratio=$(calc "$on / $off")
      if (($(calc "$aratio <= 1.1"))); then averdict=PASS; else averdict=MISS missed=1; fi
    fi
    if [[ -n $poff && -n $pon && $poff != nan && $pon != nan && $pon != inf && $poff != inf ]]; then
      if (($(calc "$pon <= 0.02 && $pon <= $poff * 1.25 + 0.0001"))); then pverdict=PASS; else pverdict=MISS missed=1; fi
    fi
    ((ARCHIVE_DROPPED == 0)) || { dverdict=MISS missed=1; }
    report "$(printf '  %-44s %-20s %-16s %-8s %s' metric "$asrv" "archive off" goal verdict)"
    report "$(printf '  %-44s %-20s %-16s %-8s %s' "CPU-s per stream-second (N=$N)" "$(fmt "$on" %.5f)" "$(fmt "$off" %.5f)" "" "")"
    report "$(printf '  %-44s %-20s %-16s %-8s %s' "CPU ratio on/off" "${aratio:+$(fmt "$aratio" %.3f)}" "" "<= 1.1" "$averdict")"
    report "$(printf '  %-44s %-20s %-16s %-8s %s' "segment availability p99 (last round)" "$(ms "$pon")" "$(ms "$poff")" "unchanged" "$pverdict")"
    report "$(printf '  %-44s %-20s %-16s %-8s %s' "segments the archive dropped (all rounds)" "$ARCHIVE_DROPPED" "" "0" "$dverdict")"
  done
  if do_phase cpu; then
    local r srv line
    for ((r = 1; r <= ROUNDS; r++)); do
      line=""
      for srv in ${SYSTEMS//,/ }; do line+="$srv $(fmt "${OTHER_CORES[$srv-$r]}" %.2f)  "; done
      report "  rest of machine busy, round $r (cores): $line"
    done
  fi
  if do_phase mem; then
    report "$(printf '  %-44s %-20s %-16s' "RSS growth t=${MEM_WARMUP}..${MEM_SECONDS}s ($MEM_STREAMS streams)" "$MEM_GROWTH" "not measured")"
    report "$(printf '  %-44s %-20s %-16s' "RSS growth t=${MEM_HALF_T}..${MEM_SECONDS}s" "$MEM_GROWTH_HALF" "not measured")"
    report "$(printf '  %-44s %-20s %-16s' "GC target growth t=${MEM_HALF_T}..${MEM_SECONDS}s" "$MEM_TARGET_HALF" "not measured")"
  fi
  report ""
  report "results: $RESULTS; logs: $RUN"
  report "reproduce (from the repository root): $REPRO"
  if ((${#FAILURES[@]})); then
    local f
    for f in "${FAILURES[@]}"; do report "FAIL: $f"; done
    exit 1
  fi
  ((STRICT && missed)) && exit 3
  return 0
}

main
