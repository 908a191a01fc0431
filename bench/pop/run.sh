#!/usr/bin/env bash
# PoP benchmark: our edge cache (cmd/pop, as 3 nodes sharing the key space
# and as 1 process) against nginx proxy_cache and Varnish, side by side in
# one run, on this machine, over loopback only. See README.md beside this
# file for what is measured and how to read the results.
#
#   bench/pop/run.sh                                     # the full run (~15 min)
#   NS=200 ROUNDS=2 WRK_D=5 WRK_ROUNDS=1 bench/pop/run.sh  # a quick check (~2 min)
#
# Every setting is an environment variable.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: [VAR=value ...] bench/pop/run.sh

  NS=1000,10000      herd sizes: concurrent connections per herd
  ROUNDS=5           herds per system and size, each on a new segment path;
                     systems alternate (ours3, ours1, nginx, varnish, rotated)
  HOT=1              after each herd, herd again on the now-cached path
  WRK_D=15           seconds per wrk run
  WRK_T=2 WRK_C=64   wrk threads and connections
  WRK_ROUNDS=3       wrk rounds; each round runs every system on each object
  SYSTEMS=ours3,ours1,nginx,varnish
                     (ours1t: ours1 serving private streams, a playback token
                     in every request's path, checked per request: #23)
  PHASES=herd,wrk
  DELAY_MS=220       the stub origin's time until a segment's last byte
  PIECES=0           0: the origin sends a segment whole after DELAY_MS;
                     n: in n even pieces over DELAY_MS (a far or streaming
                     origin: the bytes arrive while the herd waits)
  WAIT_MAX=1200      seconds to wait for other benchmarks to end (polls every 10 s)
  POP_BIN=path       a prebuilt cmd/pop binary (e.g. a profiling build)
  OURS3_PROCS=n      GOMAXPROCS of each ours3 node (default: Go's, the number
                     of cores; 3 nodes on 2 cores then run 6 Ps: 1 is
                     closer to 3 machines)
  STRICT=1           exit 3 when a goal of ours is missed
EOF
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
(($# == 0)) || { usage >&2; exit 2; }

NS=${NS:-1000,10000}
ROUNDS=${ROUNDS:-5}
HOT=${HOT:-1}
WRK_D=${WRK_D:-15}
WRK_T=${WRK_T:-2}
WRK_C=${WRK_C:-64}
WRK_ROUNDS=${WRK_ROUNDS:-3}
SYSTEMS=${SYSTEMS:-ours3,ours1,nginx,varnish}
PHASES=${PHASES:-herd,wrk}
DELAY_MS=${DELAY_MS:-220}
PIECES=${PIECES:-0}
WAIT_MAX=${WAIT_MAX:-1200}
STRICT=${STRICT:-0}
OURS3_PROCS=${OURS3_PROCS:-}
SEG_BYTES=$((250 << 10))

for v in ROUNDS HOT WRK_D WRK_T WRK_C WRK_ROUNDS DELAY_MS PIECES WAIT_MAX; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "run.sh: $v must be a whole number, not '${!v}'" >&2; exit 2; }
done
[[ -z $OURS3_PROCS || $OURS3_PROCS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: OURS3_PROCS must be a positive number" >&2; exit 2; }
[[ $NS =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "run.sh: NS must be numbers separated by commas, not '$NS'" >&2; exit 2; }
IFS=, read -r -a NLIST <<<"$NS"
IFS=, read -r -a SYSLIST <<<"$SYSTEMS"
for s in "${SYSLIST[@]}"; do
  [[ $s =~ ^(ours3|ours1|ours1t|nginx|varnish)$ ]] || { echo "run.sh: unknown system '$s' in SYSTEMS" >&2; exit 2; }
done
((ROUNDS >= 1 && WRK_ROUNDS >= 1 && WRK_D >= 1 && WRK_C >= WRK_T)) || { echo "run.sh: ROUNDS, WRK_ROUNDS, WRK_D >= 1 and WRK_C >= WRK_T" >&2; exit 2; }
do_phase() { [[ ,$PHASES, == *,$1,* ]]; }
has_system() { [[ ,$SYSTEMS, == *,$1,* ]]; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/bench/out
RUN=$OUT/pop-run # logs, configs and caches of the latest run
RESULTS=$OUT/pop-results.txt
# shellcheck source=../lib.sh
source "$ROOT/bench/lib.sh"
BINDIR=$OUT/pop-bin
POP=${POP_BIN:-$BINDIR/pop}
HERD=$BINDIR/herd
TOKEN_BIN=$BINDIR/token
TOKEN="" # ours1t's playback token, for every stream named priv*

REPRO="NS=$NS ROUNDS=$ROUNDS HOT=$HOT WRK_D=$WRK_D WRK_T=$WRK_T WRK_C=$WRK_C WRK_ROUNDS=$WRK_ROUNDS SYSTEMS=$SYSTEMS PHASES=$PHASES"
((DELAY_MS == 220)) || REPRO+=" DELAY_MS=$DELAY_MS"
((PIECES == 0)) || REPRO+=" PIECES=$PIECES"
[[ -z ${POP_BIN:-} ]] || REPRO+=" POP_BIN=$POP_BIN"
[[ -z $OURS3_PROCS ]] || REPRO+=" OURS3_PROCS=$OURS3_PROCS"
REPRO+=" bench/pop/run.sh"


# ---------------------------------------------------------------- cleanup
PIDS=() # every process this script started and may still be running
cleanup() {
  local rc=$? p alive t
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for ((t = 0; t < 75; t++)); do # up to 15 s for graceful exits
    alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.2
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted; stopping everything this script started"; exit 130' INT
trap 'log "terminated; stopping everything this script started"; exit 143' TERM

# run_fg runs a bounded command (herd client, wrk) as a tracked background
# job and waits for it, so that INT and TERM stop it too.
run_fg() {
  "$@" &
  local p=$!
  PIDS+=("$p")
  wait "$p"
}


# OTHER_BENCH matches the processes of the other benchmarks of this repo:
# the ingest script (also when fed to bash on a pipe), the origin binary
# it builds and its publishers' input.
OTHER_BENCH='bench/ingest/run\.sh|bench/out/origin-bench|/origin-bench |ingest-src-[^ ]*\.flv'




# tree_ticks prints user+system clock ticks used so far by pids and their
# children (live, and those already waited for).
tree_ticks() {
  local total=0 p line f
  for p in "$@" $(for q in "$@"; do pgrep -P "$q" || true; done); do
    line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -r -a f <<<"${line##*) }" # f[0] is field 3: utime is f[11]
    total=$((total + f[11] + f[12] + f[13] + f[14]))
  done
  echo "$total"
}
HZ=$(getconf CLK_TCK)

# sys_busy prints the busy clock ticks of the whole machine so far.
sys_busy() {
  local user nice system irq softirq steal
  read -r _ user nice system _ _ irq softirq steal _ </proc/stat
  echo "$((user + nice + system + irq + softirq + steal))"
}

# background_busy prints how many cores the machine keeps busy over 3 s
# while this script's systems are idle: the neighbours' load.
background_busy() {
  local b0 b1
  b0=$(sys_busy)
  sleep 3
  b1=$(sys_busy)
  awk -v b="$((b1 - b0))" -v hz="$HZ" 'BEGIN { printf "%.2f", b / hz / 3 }'
}

# children_secs sets CHILD_SECS to the CPU seconds of this shell's
# waited-for children. It must run in this shell, not in $(...): a subshell
# has no children of its own yet.
children_secs() {
  times >"$RUN/times.txt"
  CHILD_SECS=$(awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } printf "%.3f", s }' "$RUN/times.txt")
}


# ---------------------------------------------------------------- systems
declare -A URLS PIDS_OF # per system: comma-separated base URLs; pids

start_origin() {
  ORIGIN_PORT=$(free_port)
  "$HERD" -mode origin -listen "127.0.0.1:$ORIGIN_PORT" -private priv -delay "${DELAY_MS}ms" -pieces "$PIECES" -segment-bytes "$SEG_BYTES" >"$RUN/origin.log" 2>&1 &
  ORIGIN_PID=$!
  PIDS+=("$ORIGIN_PID")
  wait_listening "$ORIGIN_PID" "$ORIGIN_PORT" "stub origin"
  ORIGIN=http://127.0.0.1:$ORIGIN_PORT
}

start_ours3() {
  local ports=() peers="" i p
  for i in 0 1 2; do
    p=$(free_port)
    ports+=("$p")
    peers+="${peers:+,}http://127.0.0.1:$p"
  done
  URLS[ours3]=$peers
  PIDS_OF[ours3]=""
  local env=()
  [[ -z $OURS3_PROCS ]] || env=(env "GOMAXPROCS=$OURS3_PROCS")
  for i in 0 1 2; do
    "${env[@]}" "$POP" -http "127.0.0.1:${ports[$i]}" -origin "$ORIGIN" -peers "$peers" -self "http://127.0.0.1:${ports[$i]}" \
      >"$RUN/ours3-node$i.log" 2>&1 &
    PIDS+=("$!")
    PIDS_OF[ours3]+="$! "
    wait_listening "$!" "${ports[$i]}" "ours3 node $i"
  done
}

start_ours1() {
  local p
  p=$(free_port)
  "$POP" -http "127.0.0.1:$p" -origin "$ORIGIN" >"$RUN/ours1.log" 2>&1 &
  PIDS+=("$!")
  PIDS_OF[ours1]=$!
  wait_listening "$!" "$p" "ours1"
  URLS[ours1]=http://127.0.0.1:$p
}

# start_ours1t starts ours1 with the public key of $TOKEN: the stub origin
# marks the streams named priv* private, so every request for them
# carries and needs the token (sys_path).
start_ours1t() {
  local p
  p=$(free_port)
  "$POP" -http "127.0.0.1:$p" -origin "$ORIGIN" -token-keys "$RUN/keys" >"$RUN/ours1t.log" 2>&1 &
  PIDS+=("$!")
  PIDS_OF[ours1t]=$!
  wait_listening "$!" "$p" "ours1t"
  URLS[ours1t]=http://127.0.0.1:$p
}

# make_token writes a key pair under $RUN/keys and sets TOKEN to a token
# for every stream named priv*, as a platform's backend would issue it.
make_token() {
  mkdir -p "$RUN/keys"
  "$TOKEN_BIN" keygen -kid bench -out "$RUN/keys" >/dev/null || die "token keygen failed"
  TOKEN=$("$TOKEN_BIN" issue -key "$RUN/keys/bench.key" -stream priv -prefix -ttl 24h) || die "token issue failed"
}

# sys_path prints the path system $1 is asked for path $2 (/live/NAME/...):
# for ours1t, the private stream privNAME with the token in the path.
sys_path() {
  if [[ $1 == ours1t ]]; then echo "/t/$TOKEN/live/priv${2#/live/}"; else echo "$2"; fi
}

start_nginx() {
  local dir=$RUN/nginx p
  p=$(free_port)
  mkdir -p "$dir/logs" "$dir/cache" "$dir/tmp"
  # The workers run as an unprivileged user when nginx is started by root.
  chmod 0777 "$dir/cache" "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
# Written by bench/pop/run.sh: nginx proxy_cache as a reference PoP.
daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile $(ulimit -n);
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections $(($(ulimit -n) - 100)); }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 600s;
    keepalive_requests 1000000;
    client_body_temp_path $dir/tmp/client;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    proxy_cache_path $dir/cache levels=1:2 keys_zone=pop:64m max_size=4g inactive=1h use_temp_path=off;
    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$p backlog=4096;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache pop;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 5s;
            proxy_cache_valid 200 1h;
            add_header X-Cache \$upstream_cache_status always;
        }
    }
}
EOF
  nginx -t -q -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" 2>"$dir/logs/configtest.log" ||
    die "nginx rejected its config: $(cat "$dir/logs/configtest.log")"
  nginx -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" >"$dir/logs/stdout.log" 2>&1 &
  PIDS+=("$!")
  PIDS_OF[nginx]=$!
  wait_listening "$!" "$p" "nginx"
  URLS[nginx]=http://127.0.0.1:$p
}

start_varnish() {
  local dir=$RUN/varnish p
  p=$(free_port)
  mkdir -p "$dir"
  # -b: the built-in VCL, which streams (beresp.do_stream is true by
  # default in Varnish 6 and 7) and coalesces misses on its waiting list.
  # The thread pool is sized so that 10000 concurrent requests are queued,
  # not dropped (thread_queue_limit is 20 by default); idle connections
  # are kept as long as nginx and ours keep them.
  varnishd -F -n "$dir" -a "127.0.0.1:$p" -b "127.0.0.1:$ORIGIN_PORT" -s malloc,512m -T none \
    -p thread_pool_min=500 -p thread_pool_max=6000 -p thread_queue_limit=20000 \
    -p timeout_idle=600 -p listen_depth=4096 >"$RUN/varnish.log" 2>&1 &
  PIDS+=("$!")
  PIDS_OF[varnish]=$!
  wait_listening "$!" "$p" "varnish"
  URLS[varnish]=http://127.0.0.1:$p
}

# first_url prints the first base URL of a system (ours3: node 0).
first_url() { echo "${URLS[$1]%%,*}"; }

# check_system fails unless a system answers a new segment correctly.
check_system() {
  local s=$1 path size
  path=$(sys_path "$1" "/live/check-$1/e/v0/$((RANDOM + 1)).m4s")
  size=$(curl -fsS --max-time 10 -o /dev/null -w '%{size_download}' "$(first_url "$s")$path") ||
    die "$s does not answer $path (logs in $RUN)"
  ((size == SEG_BYTES)) || die "$s answered $path with $size bytes, want $SEG_BYTES"
  if [[ $s == ours1t ]]; then
    # The same private stream without the token: refused, not fetched.
    local code
    code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$(first_url "$s")/live/privcheck-$s/e/v0/$((RANDOM + 1)).m4s")
    [[ $code == 401 ]] || die "$s answered a private stream without a token with $code, want 401"
  fi
}

# node0_peer_fetches prints how many fetches of a class (segment or
# playlist) ours3's node 0 made from its peers.
node0_peer_fetches() {
  curl -fsS --max-time 5 "$(first_url ours3)/metrics" | awk -v c="$1" '
    $1 ~ /^live_pop_upstream_fetches_total/ && index($1, "target=\"peer\"") && index($1, "class=\"" c "\"") { s += $2 }
    END { printf "%.0f", s }'
}

# ours_metric prints the sum over a system's nodes of a /metrics sample
# matching a regular expression.
ours_metric() {
  local s=$1 re=$2 u total=0 v
  IFS=, read -r -a us <<<"${URLS[$s]}"
  for u in "${us[@]}"; do
    v=$(curl -fsS --max-time 5 "$u/metrics" 2>/dev/null | awk -v re="$re" '$1 ~ re { s += $2 } END { printf "%.0f", s }')
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# ---------------------------------------------------------------- phases
run_herds() {
  local n r i s tok
  report "THUNDERING HERD phase: sizes $NS, $ROUNDS round(s) per system, systems alternating; per-herd lines in $RUN/herd-console.txt"
  for n in "${NLIST[@]}"; do
    (($(ulimit -n) > n + 200)) || die "ulimit -n is $(ulimit -n): too low for a herd of $n connections"
    for ((r = 1; r <= ROUNDS; r++)); do
      log "herd N=$n round $r/$ROUNDS; load: $(cut -d' ' -f1-3 /proc/loadavg)"
      for ((i = 0; i < ${#SYSLIST[@]}; i++)); do
        s=${SYSLIST[$(((r - 1 + i) % ${#SYSLIST[@]}))]}
        if [[ $s == ours1t ]]; then tok=(-token "$TOKEN" -prefix "/live/privherd$RUN_ID"); else tok=(-prefix "/live/herd$RUN_ID"); fi
        run_fg "$HERD" -mode client -system "$s=${URLS[$s]}" -n "$n" -rounds 1 -first-round "$r" \
          -origin "$ORIGIN" "${tok[@]}" -hot="$([[ $HOT == 1 ]] && echo true || echo false)" \
          -segment-bytes "$SEG_BYTES" -timeout 60s -pause 1s -out "$RUN/herd.jsonl" -label "load $(cut -d' ' -f1 /proc/loadavg)" \
          >"$RUN/herd-last.txt" 2>&1 || { cat "$RUN/herd-last.txt" >&2; die "herd client failed on $s (N=$n, round $r)"; }
        tee -a "$RUN/herd-console.txt" <"$RUN/herd-last.txt" >&2
      done
    done
  done
  if has_system ours3; then
    report "  ours3 upstream fetches over the herd phase (all nodes): to the origin $(ours_metric ours3 '^live_pop_upstream_fetches_total.*target="origin"'), to peers $(ours_metric ours3 '^live_pop_upstream_fetches_total.*target="peer"')"
  fi
  report ""
}

# wrk_once runs wrk against one URL and appends a row to $RUN/wrk.tsv.
wrk_once() {
  local s=$1 obj=$2 r=$3 url=$4 out t0 t1 b0 b1 c0 c1 rps tr mbps errs non2xx se cpu wcpu others
  out=$RUN/wrk-$s-$obj-r$r.txt
  t0=$(tree_ticks ${PIDS_OF[$s]})
  b0=$(sys_busy)
  children_secs
  c0=$CHILD_SECS
  run_fg wrk -t"$WRK_T" -c"$WRK_C" -d"${WRK_D}s" --latency "$url" >"$out" 2>&1 || die "wrk failed against $s ($out)"
  children_secs
  c1=$CHILD_SECS
  b1=$(sys_busy)
  t1=$(tree_ticks ${PIDS_OF[$s]})
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  tr=$(awk '/^Transfer\/sec:/ { print $2 }' "$out")
  mbps=$(awk -v t="$tr" 'BEGIN { v = t + 0; u = t; sub(/^[0-9.]+/, "", u)
    f = (u == "GB") ? 1024 : (u == "MB") ? 1 : (u == "KB") ? 1 / 1024 : 1 / 1048576; printf "%.1f", v * f }')
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  se=$(awk -F'[ ,]+' '/Socket errors:/ { print $4 + $6 + $8 + $10 }' "$out")
  errs=$((${non2xx:-0} + ${se:-0}))
  cpu=$(calc "($t1 - $t0) / $HZ")
  wcpu=$(calc "$c1 - $c0")
  # Busy time of neither the server nor wrk: neighbours, and the kernel's
  # loopback work done in softirq context (kept in wrk.tsv only).
  others=$(calc "(($b1 - $b0) / $HZ - $cpu - $wcpu) / $WRK_D")
  printf '%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n' "$s" "$obj" "$r" "${rps:-0}" "$mbps" "$errs" "$cpu" "$WRK_D" "$wcpu" "$others" >>"$RUN/wrk.tsv"
  log "$(printf 'wrk %-8s %-8s r%d: %10s req/s %9s MB/s  errors %d  CPU-s: server %5.2f wrk %5.2f; other cores busy %.2f  p99 %s' "$s" "$obj" "$r" "${rps:-0}" "$mbps" "$errs" "$cpu" "$wcpu" "$others" \
    "$(awk '$1 == "99%" { print $2 }' "$out")")"
}

run_wrk() {
  local r i s obj path url j code xc via before
  report "CACHE-HIT THROUGHPUT phase: wrk -t$WRK_T -c$WRK_C -d${WRK_D}s, $WRK_ROUNDS round(s), one system at a time, alternating"
  printf '# system\tobject\tround\treq/s\tMB/s\terrors\tserver_cpu_s\tseconds\twrk_cpu_s\tother_cores_busy\n' >"$RUN/wrk.tsv"
  for ((r = 1; r <= WRK_ROUNDS; r++)); do
    for obj in segment playlist; do
      for ((i = 0; i < ${#SYSLIST[@]}; i++)); do
        s=${SYSLIST[$(((r - 1 + i) % ${#SYSLIST[@]}))]}
        # A fixed path per system: its owner among ours3's nodes stays the
        # same across rounds. The playlist's max-age is 60 s; the warm-up
        # refreshes it when it expired since the last round.
        if [[ $obj == segment ]]; then path=/live/tp-$s/e/v0/105.m4s; else path=/live/tp-$s/e/v0/index.m3u8; fi
        url=$(first_url "$s")$(sys_path "$s" "$path")
        before=$([[ $s == ours3 ]] && node0_peer_fetches "$obj" || echo 0)
        for ((j = 0; j < 8; j++)); do
          read -r code xc < <(curl -sS --max-time 10 -o /dev/null -D - "$url" | awk 'NR == 1 { c = $2 } tolower($1) == "x-cache:" { x = $2 } END { print c, x }' | tr -d '\r')
          [[ $code == 200 ]] || die "warm-up of $s $url: status $code"
        done
        sleep 0.5 # ours prefetches what the playlist lists: let that finish
        if [[ $s == ours3 && $r == 1 ]]; then
          # Which layer of node 0 serves the path: its own (local) cache if
          # it owns the key, else its proxy layer (a copy of the owner's).
          via="own cache (node 0 owns the key)"
          (($(node0_peer_fetches "$obj") > before)) && via="proxy layer (node 0 is not the key's owner)"
          report "  ours3 $obj $path via node 0: last warm-up X-Cache=$xc; served from node 0's $via"
        fi
        wrk_once "$s" "$obj" "$r" "$url"
      done
    done
  done
  report ""
}

# ---------------------------------------------------------------- main
mkdir -p "$OUT" "$BINDIR"
# One run at a time: two would share bench/out/pop-run, the binaries and
# the CPUs. The lock goes with this shell (and the servers it starts).
exec 9>"$OUT/pop-run.lock"
if ! flock -n 9; then
  log "another bench/pop/run.sh is running; waiting up to ${WAIT_MAX}s"
  flock -w "$WAIT_MAX" 9 || { echo "run.sh: another bench/pop/run.sh still runs after ${WAIT_MAX}s" >&2; exit 1; }
fi
: >"$RESULTS"
install_missing nginx:nginx varnishd:varnish wrk:wrk curl:curl ss:iproute2
wait_for_quiet

# Raise the descriptor limit as far as this container allows; every server
# and the client inherit it.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log "building $HERD${POP_BIN:+ (using the prebuilt $POP_BIN)}"
(cd "$ROOT" && go build -o "$HERD" ./bench/pop/herd) || die "build of bench/pop/herd failed"
(cd "$ROOT" && go build -o "$TOKEN_BIN" ./cmd/token) || die "build of cmd/token failed"
if [[ -z ${POP_BIN:-} ]]; then
  (cd "$ROOT" && go build -o "$POP" ./cmd/pop) || die "build of cmd/pop failed"
fi
[[ -x $POP ]] || die "no pop binary at $POP"

rm -rf "$RUN"
mkdir -p "$RUN"
RUN_ID=$(date +%s)
make_token

dirty=$(cd "$ROOT" && git status --porcelain -- pop cmd/pop 2>/dev/null | wc -l)
report "PoP benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), ulimit -n $(ulimit -n)"
report "  tree:    $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$( ((dirty > 0)) && echo " + $dirty uncommitted file(s) under pop/ or cmd/pop/"), $(go version | awk '{ print $3 }')"
report "  ours:    $POP (sha256 $(sha256sum "$POP" | cut -c1-16)), 16 shards, 1 GiB cache per node; ours3 GOMAXPROCS ${OURS3_PROCS:-default ($(nproc))} per node"
report "  nginx:   $(nginx -v 2>&1 | sed 's/.*version: //'), proxy_cache on disk in $RUN/nginx/cache, proxy_cache_lock on, worker_processes auto"
report "  varnish: $(varnishd -V 2>&1 | head -n1 | sed 's/^varnishd (//; s/ revision.*//'), -s malloc,512m, built-in VCL"
if ((PIECES == 0)); then seg_how="after ${DELAY_MS} ms"; else seg_how="in $PIECES pieces over ${DELAY_MS} ms"; fi
report "  origin:  stub (bench/pop/herd -mode origin): segments $SEG_BYTES bytes $seg_how, immutable; playlists 600 bytes, max-age=60"
report "  machine before the start: load $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min); $(background_busy) of $(nproc) cores busy over 3 s; busiest processes now: $(top -bn1 -w 200 | awk 'NR > 7 && $9 > 0 { printf "%s%s %s%%", (n++ ? ", " : ""), $12, $9 } n == 4 { exit } END { if (!n) printf "none above 0%%" }')"
report ""

start_origin
for s in "${SYSLIST[@]}"; do "start_$s"; done
for s in "${SYSLIST[@]}"; do check_system "$s"; done
log "systems up: origin $ORIGIN; $(for s in "${SYSLIST[@]}"; do printf '%s %s; ' "$s" "${URLS[$s]}"; done)"

if do_phase herd; then
  report "  neighbours before the herd phase: $(background_busy) cores busy (systems idle)"
  run_herds
fi
if do_phase wrk; then
  report "  neighbours before the wrk phase: $(background_busy) cores busy (systems idle)"
  run_wrk
fi
report "neighbours at the end: $(background_busy) cores busy (systems idle); load $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min)"
report ""
args=()
do_phase herd && args+=(-herd "$RUN/herd.jsonl")
do_phase wrk && args+=(-wrk "$RUN/wrk.tsv")
"$HERD" -mode report -target "${DELAY_MS}ms" -pieces "$PIECES" "${args[@]}" | tee -a "$RESULTS"
for s in "${SYSLIST[@]}"; do
  [[ $s == ours* ]] || continue
  for f in "$RUN/$s.log" "$RUN/$s"-node*.log; do
    [[ -e $f ]] || continue
    report "  $(basename "$f"): $(grep -c 'level=WARN' "$f" || true) warnings, $(grep -c 'level=ERROR' "$f" || true) errors"
  done
done
has_system nginx && report "  nginx error.log: $(grep -c '\[error\]\|\[crit\]\|\[alert\]' "$RUN/nginx/logs/error.log" 2>/dev/null || true) error lines"
report ""
report "reproduce: $REPRO"
report "results: $RESULTS; logs and raw data: $RUN"

if ((STRICT)) && grep -q ': NO' "$RESULTS"; then
  exit 3
fi
