#!/usr/bin/env bash
# Failover benchmark (#21): two origins (cmd/origin -etcd) fed one ffmpeg
# through its tee muxer (dual hot ingest, byte-identical files), a real
# etcd (Debian's etcd-server), and PLAYERS simulated players (cmd/loadtest,
# half DASH) watching through a 3-node PoP; the stream's primary origin is
# killed (SIGKILL) KILLS times, and each kill is measured: the time from
# the kill to the first byte the PoP got from the backup, and what the
# players saw (the longest segment or playlist request, stalls, errors).
# The PoP is ours (cmd/pop -etcd) or nginx (proxy_cache, an upstream of
# the two origins, the second "backup", proxy_next_upstream), alternating
# kill by kill in the same run. Then the directory's cost: a fleet of
# COST_ORIGINS origins listing COST_STREAMS streams and COST_VIEWS views
# (PoPs) on the same etcd, without media (bench/failover/dircost). Over
# loopback only; every loop is bounded. See README.md beside this file.
#
#   bench/failover/run.sh                        # 20 kills each, 200 players (~20 min)
#   KILLS=2 PLAYERS=50 bench/failover/run.sh     # a quick check (~3 min)
#
# Every setting is an environment variable.
set -euo pipefail

usage() {
  cat <<'EOF2'
usage: [VAR=value ...] bench/failover/run.sh

  KILLS=20         kills of the primary origin per system
  PLAYERS=200      players watching each kill's stream (all from the start)
  DASH=0.5         share of them on DASH (the others on HLS)
  BEFORE=8         seconds players play before the kill (plus 0-1 s at
                   random, so that kills fall anywhere in a segment)
  AFTER=10         seconds players play after it
  WINDOW=5         seconds after the kill counted as "the switch"
  SYSTEMS=ours,nginx
  HEDGE=1s         ours: cmd/pop -hedge-after
  COST=1           measure the directory's cost (0: skip)
  COST_ORIGINS=10 COST_STREAMS=1000 COST_VIEWS=20 COST_SECONDS=20
  WAIT_MAX=1200    seconds to wait for other benchmarks to end
EOF2
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
(($# == 0)) || { usage >&2; exit 2; }

KILLS=${KILLS:-20}
PLAYERS=${PLAYERS:-200}
DASH=${DASH:-0.5}
BEFORE=${BEFORE:-8}
AFTER=${AFTER:-10}
WINDOW=${WINDOW:-5}
SYSTEMS=${SYSTEMS:-ours,nginx}
HEDGE=${HEDGE:-1s}
COST=${COST:-1}
COST_ORIGINS=${COST_ORIGINS:-10}
COST_STREAMS=${COST_STREAMS:-1000}
COST_VIEWS=${COST_VIEWS:-20}
COST_SECONDS=${COST_SECONDS:-20}
WAIT_MAX=${WAIT_MAX:-1200}
for v in KILLS PLAYERS BEFORE AFTER WINDOW COST COST_ORIGINS COST_STREAMS COST_VIEWS COST_SECONDS WAIT_MAX; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "run.sh: $v must be a whole number, not '${!v}'" >&2; exit 2; }
done
((PLAYERS >= 1 && BEFORE >= 4 && AFTER >= WINDOW && WINDOW >= 1 && COST_ORIGINS >= 2 && COST_SECONDS >= 5)) ||
  { echo "run.sh: PLAYERS >= 1, BEFORE >= 4, AFTER >= WINDOW >= 1, COST_ORIGINS >= 2, COST_SECONDS >= 5" >&2; exit 2; }
[[ $DASH =~ ^(0(\.[0-9]+)?|1(\.0+)?)$ ]] || { echo "run.sh: DASH must be in [0, 1]" >&2; exit 2; }
[[ $HEDGE =~ ^[0-9]+(ms|s)$ ]] || { echo "run.sh: HEDGE must be a duration like 1s or 500ms" >&2; exit 2; }
IFS=, read -r -a SYSLIST <<<"$SYSTEMS"
for s in "${SYSLIST[@]}"; do
  [[ $s =~ ^(ours|nginx)$ ]] || { echo "run.sh: unknown system '$s' in SYSTEMS (ours, nginx)" >&2; exit 2; }
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/bench/out
RUN=$OUT/failover-run # logs, configs, JSON reports of the latest run
RESULTS=$OUT/failover-results.txt
# shellcheck source=../lib.sh
source "$ROOT/bench/lib.sh"
BINDIR=$OUT/failover-bin
REPRO="KILLS=$KILLS PLAYERS=$PLAYERS DASH=$DASH BEFORE=$BEFORE AFTER=$AFTER WINDOW=$WINDOW SYSTEMS=$SYSTEMS HEDGE=$HEDGE COST=$COST"
((COST == 0)) || REPRO+=" COST_ORIGINS=$COST_ORIGINS COST_STREAMS=$COST_STREAMS COST_VIEWS=$COST_VIEWS COST_SECONDS=$COST_SECONDS"
REPRO+=" bench/failover/run.sh"
OTHER_BENCH='bench/(ingest|pop|flash|ll|archive|encrypt|latency)/run\.sh|bench/out/origin-bench'

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

# now prints the time as seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }

# metric_sum URL REGEX sums the samples of /metrics lines matching REGEX.
metric_sum() {
  curl -sf --max-time 5 "$1/metrics" | awk -v re="$2" '$0 !~ /^#/ && $0 ~ re { s += $NF } END { printf "%.0f", s }'
}

# await WHAT SECONDS COMMAND... runs COMMAND every 0.2 s until it
# succeeds, SECONDS at most.
await() {
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "$what: not within ${secs}s"
}

# ---------------------------------------------------------------- etcd
start_etcd() {
  local peer
  ETCD_PORT=$(free_port)
  peer=$(free_port)
  ETCD=http://127.0.0.1:$ETCD_PORT
  etcd --name failover --data-dir "$RUN/etcd-data" \
    --listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "failover=http://127.0.0.1:$peer" >"$RUN/etcd.log" 2>&1 &
  ETCD_PID=$!
  PIDS+=("$ETCD_PID")
  wait_listening "$ETCD_PID" "$ETCD_PORT" etcd
  await "etcd healthy" 15 curl -sf "$ETCD/health"
}

# etcd_msgs prints the messages etcd received so far, by gRPC method, as
# "Method count" lines, then "sent_bytes N" and "received_bytes N".
etcd_msgs() {
  curl -sf --max-time 5 "$ETCD/metrics" | awk '
    /^grpc_server_msg_received_total/ { match($0, /grpc_method="[^"]*"/); m = substr($0, RSTART + 13, RLENGTH - 14); n[m] += $NF }
    /^etcd_network_client_grpc_sent_bytes_total/ { print "sent_bytes", $NF }
    /^etcd_network_client_grpc_received_bytes_total/ { print "received_bytes", $NF }
    END { for (m in n) print m, n[m] }'
}

# etcd_rates BEFORE AFTER SECONDS prints the rates between two etcd_msgs
# outputs: "Method rate/s" and "total rate/s" lines.
etcd_rates() {
  awk -v secs="$3" 'FNR == NR { a[$1] = $2; next } { d = $2 - a[$1]; r[$1] = d / secs; if ($1 !~ /bytes/) total += d / secs }
    END { for (k in r) if (r[k] > 0) printf "%s %.2f\n", k, r[k]; printf "total %.2f\n", total }' "$1" "$2"
}

# ---------------------------------------------------------------- the fleet
# start_origin I starts (or starts again) origin oI, on its ports.
start_origin() {
  local i=$1
  "$BINDIR/origin" -rtmp "127.0.0.1:${RTMP_PORT[$i]}" -http "127.0.0.1:${HTTP_PORT[$i]}" -transcode=false \
    -etcd "$ETCD" -id "o$i" -zone "z$i" >>"$RUN/origin$i.log" 2>&1 &
  ORIGIN_PID[$i]=$!
  PIDS+=("$!")
  wait_listening "${ORIGIN_PID[$i]}" "${HTTP_PORT[$i]}" "origin o$i"
  wait_listening "${ORIGIN_PID[$i]}" "${RTMP_PORT[$i]}" "origin o$i (RTMP)"
}

# registered I SINCE: the directory, as PoP node 0 sees it, lists oI with
# a record written at SINCE (seconds since the epoch) or later.
registered() {
  curl -sf --max-time 2 "${OURS_URLS[0]}/api/origins" |
    jq -e --arg id "o$1" --argjson since "${2%.*}" \
      '.current and any(.origins[]; .id == $id and (.updated | sub("\\.[0-9]+"; "") | sub("[+-][0-9:]+$|Z$"; "Z") | fromdateiso8601) >= $since)'
}

start_ours() {
  local i nowhere ports=() peers=""
  nowhere=http://127.0.0.1:$(free_port) # -origin: only for streams the directory does not know
  for i in 0 1 2; do
    ports+=("$(free_port)")
    peers+="${peers:+,}http://127.0.0.1:${ports[$i]}"
  done
  OURS_URLS=()
  for i in 0 1 2; do
    "$BINDIR/pop" -http "127.0.0.1:${ports[$i]}" -origin "$nowhere" -etcd "$ETCD" -hedge-after "$HEDGE" \
      -peers "$peers" -self "http://127.0.0.1:${ports[$i]}" -log-format json >"$RUN/ours-node$i.log" 2>&1 &
    PIDS+=("$!")
    wait_listening "$!" "${ports[$i]}" "ours node $i"
    OURS_URLS+=("http://127.0.0.1:${ports[$i]}")
  done
  OURS_TARGETS=$peers
}

# start_nginx runs one nginx on 3 ports (one cache, as ours shares one key
# space over its 3 nodes), in front of both origins: o0 first, o1 its
# backup, the next upstream asked on an error, a timeout or a 5xx.
start_nginx() {
  local dir=$RUN/nginx ports=() i listen=""
  for i in 0 1 2; do
    ports+=("$(free_port)")
    listen+="        listen 127.0.0.1:${ports[$i]} backlog=4096;"$'\n'
  done
  NGINX_CACHE=$(mktemp -d /dev/shm/failover-nginx-cache.XXXXXX 2>/dev/null || mktemp -d "$RUN/nginx-cache.XXXXXX")
  mkdir -p "$dir/logs" "$dir/tmp"
  chmod 0777 "$NGINX_CACHE" "$dir/tmp" "$dir/logs" # workers run unprivileged when started by root
  cat >"$dir/nginx.conf" <<EOF2
# Written by bench/failover/run.sh: nginx proxy_cache over two origins.
daemon off;
master_process on;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 8192; }
http {
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 600s;
    keepalive_requests 1000000;
    client_body_temp_path $dir/tmp/client;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    # When each response began (its first byte from an upstream) is
    # msec - request_time + the upstreams' header times.
    log_format failover '\$msec \$request_time \$status \$upstream_addr \$upstream_status \$upstream_header_time \$body_bytes_sent \$upstream_cache_status \$request_uri';
    access_log $dir/logs/access.log failover buffer=64k flush=1s;
    proxy_cache_path $NGINX_CACHE levels=1:2 keys_zone=pop:64m max_size=4g inactive=10m use_temp_path=off;
    upstream fleet {
        server 127.0.0.1:${HTTP_PORT[0]};
        server 127.0.0.1:${HTTP_PORT[1]} backup;
        keepalive 64;
    }
    server {
$listen
        location / {
            proxy_pass http://fleet;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache pop;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 5s;
            proxy_cache_use_stale updating error timeout http_500 http_502 http_503 http_504;
            # The failover: the backup at once on an error, a timeout
            # (as ours after -hedge-after) or a 5xx, within 2 s.
            proxy_next_upstream error timeout http_500 http_502 http_503 http_504;
            proxy_next_upstream_tries 2;
            proxy_next_upstream_timeout 2s;
            proxy_connect_timeout 1s;
            proxy_read_timeout $HEDGE;
            add_header X-Cache \$upstream_cache_status always;
        }
    }
}
EOF2
  nginx -t -q -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" 2>"$dir/logs/configtest.log" ||
    die "nginx rejected its config: $(cat "$dir/logs/configtest.log")"
  nginx -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" >"$dir/logs/stdout.log" 2>&1 &
  PIDS+=("$!")
  for i in 0 1 2; do wait_listening "$!" "${ports[$i]}" "nginx"; done
  NGINX_TARGETS="http://127.0.0.1:${ports[0]},http://127.0.0.1:${ports[1]},http://127.0.0.1:${ports[2]}"
}

# publish NAME starts ffmpeg pushing one encoding of NAME to both origins
# (its tee muxer), for BEFORE + AFTER + 40 s at most; PUB_PID is its pid.
publish() {
  local secs=$((BEFORE + AFTER + 40))
  ffmpeg -hide_banner -nostdin -loglevel warning -re \
    -f lavfi -i "testsrc2=size=640x360:rate=30:duration=$secs" -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$secs" \
    -c:v libx264 -preset veryfast -b:v 1500k -maxrate 1500k -bufsize 1500k -g 30 -keyint_min 30 -sc_threshold 0 -bf 0 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -map 0:v -map 1:a -flags +global_header \
    -f tee "[f=flv:onfail=ignore]rtmp://127.0.0.1:${RTMP_PORT[0]}/live/$1|[f=flv:onfail=ignore]rtmp://127.0.0.1:${RTMP_PORT[1]}/live/$1" \
    >>"$RUN/ffmpeg.log" 2>&1 &
  PUB_PID=$!
  PIDS+=("$PUB_PID")
}

# roles NAME prints "primary backup" (origin indices) of a stream both
# origins serve with one epoch, as PoP node 0 merges them from both origins; fails until
# then, or until each has 4 segments of each rendition.
roles() {
  curl -sf --max-time 2 "${OURS_URLS[0]}/api/streams" | jq -er --arg n "$1" '
    .streams[] | select(.name == $n and .live) | select(all(.renditions[]; .segments >= 4))
    | .fleet as $f | select(($f | length) == 2 and ($f[0].epoch == $f[1].epoch))
    | ([$f[] | select(.role == "primary") | .origin[1:]] + [$f[] | select(.role == "backup") | .origin[1:]])
    | select(length == 2) | join(" ")'
}

# pop_failovers prints the failovers counted by our PoP nodes, by reason,
# as one "reason=N" word each.
pop_failovers() {
  local u
  for u in "${OURS_URLS[@]}"; do curl -sf --max-time 5 "$u/metrics"; done |
    awk '/^live_pop_failovers_total/ { match($0, /reason="[^"]*"/); n[substr($0, RSTART + 8, RLENGTH - 9)] += $NF }
      END { for (r in n) printf "%s=%d\n", r, n[r] }' | sort
}

# first_backup_byte SYSTEM KILLED_AT BACKUP prints the time (seconds since
# the epoch) of the first byte the PoP got from the backup after the kill,
# or nothing.
first_backup_byte() {
  local s=$1 at=$2 backup=$3
  if [[ $s == ours ]]; then
    cat "$RUN"/ours-node*.log | jq -rR 'fromjson? | select(.msg == "the backup origin answered") | .time' |
      while read -r t; do date -d "$t" +%s.%N; done |
      awk -v at="$at" '$1 >= at && (min == "" || $1 < min) { min = $1 } END { if (min != "") printf "%.3f", min }'
  else
    sleep 1.2 # the access log is flushed every second
    awk -v at="$at" -v port=":${HTTP_PORT[$backup]}" '
      index($4, port) {
        n = split($6, h, ", "); s = 0
        for (i = 1; i <= n; i++) if (h[i] != "-") s += h[i]
        t = $1 - $2 + s
        if (t >= at && (min == "" || t < min)) min = t
      }
      END { if (min != "") printf "%.3f", min }' "$RUN/nginx/logs/access.log"
  fi
}

# first_backup_ask KILLED_AT prints the time (seconds since the epoch) our
# PoP first asked the backup after the kill because the primary failed (a
# refused or broken connection, a 5xx or 404, a body broken), not because
# it was slow; or nothing.
first_backup_ask() {
  cat "$RUN"/ours-node*.log |
    jq -rR 'fromjson? | select(.msg == "a body broke; going on from the backup origin" or (.msg == "fetching from the backup origin" and .reason != "slow")) | .time' |
    while read -r t; do date -d "$t" +%s.%N; done |
    awk -v at="$1" '$1 >= at && (min == "" || $1 < min) { min = $1 } END { if (min != "") printf "%.3f", min }'
}

# kill_once SYSTEM K: a fresh stream, players through SYSTEM, a kill of
# its primary origin, the killed origin started again.
kill_once() {
  local s=$1 k=$2 name targets p b killed fb gap asked before_f="" after_f="" rc=0 lpid
  name=fo-$s-$k
  TAG=$s-k$k
  publish "$name"
  local t=0
  until roles "$name" >/dev/null 2>&1; do
    ((t++ < 150)) || die "$name: not served by both origins with one epoch within 30 s (see $RUN/origin*.log, $RUN/ffmpeg.log)"
    kill -0 "$PUB_PID" 2>/dev/null || die "ffmpeg exited (see $RUN/ffmpeg.log)"
    sleep 0.2
  done
  read -r p b <<<"$(roles "$name")"
  # nginx's primary is o0, the first server of its upstream.
  [[ $s == ours ]] || { p=0; b=1; }
  targets=$OURS_TARGETS
  [[ $s == ours ]] || targets=$NGINX_TARGETS
  [[ $s == ours ]] && before_f=$(pop_failovers | tr '\n' ' ')
  "$BINDIR/loadtest" -targets "$targets" -streams "$name" -players "$PLAYERS" -dash "$DASH" \
    -duration "$((BEFORE + AFTER + 1))s" -start-timeout 20s -quiet -json "$RUN/$TAG.json" \
    >"$RUN/$TAG-report.txt" 2>"$RUN/$TAG-loadtest.log" &
  lpid=$!
  PIDS+=("$lpid")
  sleep "$BEFORE.$(printf '%03d' $((RANDOM % 1000)))"
  kill -KILL "${ORIGIN_PID[$p]}"
  killed=$(now)
  wait "${ORIGIN_PID[$p]}" 2>/dev/null || true
  wait "$lpid" || rc=$?
  ((rc == 0)) || die "loadtest failed against $s (exit $rc; see $RUN/$TAG-loadtest.log)"
  stop "$PUB_PID"
  fb=$(first_backup_byte "$s" "$killed" "$b")
  gap=$([[ -n $fb ]] && calc "$fb - $killed" || echo "")
  asked=""
  if [[ $s == ours ]]; then
    asked=$(first_backup_ask "$killed")
    [[ -z $asked ]] || asked=$(calc "$asked - $killed")
  fi
  after_f=""
  [[ $s == ours ]] && after_f=$(pop_failovers | tr '\n' ' ')
  # The players' view of the switch: the seconds from the kill to WINDOW
  # after it.
  jq -c --argjson killed "$killed" --argjson win "$WINDOW" --arg gap "$gap" --arg asked "$asked" --arg s "$s" --arg k "$k" \
    --arg primary "o$p" --arg fb "$before_f" --arg fa "$after_f" '
    (($killed - (.start | sub("\\.[0-9]+"; "") | sub("[+-][0-9:]+$|Z$"; "Z") | fromdateiso8601)) | floor) as $tk
    | [.series[] | select(.t >= $tk and .t <= $tk + $win)] as $w
    | [.series[] | select(.t >= 3 and .t < $tk)] as $pre
    | { system: $s, kill: ($k | tonumber), primary: $primary, kill_t: $tk,
        killed_at: $killed,
        gap_s: (if $gap == "" then null else ($gap | tonumber) end),
        asked_s: (if $asked == "" then null else ($asked | tonumber) end),
        longest_segment_ms: ([$w[] | .segment.latency.max_ms] | max),
        longest_playlist_ms: ([$w[] | .playlist.latency.max_ms] | max),
        longest_before_ms: ([$pre[] | .segment.latency.max_ms, .playlist.latency.max_ms] | max),
        segment_p99_ms: ([$w[] | .segment.latency.p99_ms] | max),
        window_errors: ([$w[] | .errors] | add), window_stalls: ([$w[] | .stalls] | add),
        stalls, rebuffers, errors: .error_count, error_kinds: .errors, never_started,
        run_segment_p99_ms: .classes.segment.latency.p99_ms,
        failovers_before: $fb, failovers_after: $fa }' "$RUN/$TAG.json" >>"$RUN/kills.jsonl"
  log "$TAG: killed o$p; $(tail -n1 "$RUN/kills.jsonl" | jq -r '"gap \(.gap_s // "-") s, longest segment \(.longest_segment_ms) ms, playlist \(.longest_playlist_ms) ms, stalls \(.stalls), rebuffers \(.rebuffers), errors \(.errors) \(.error_kinds)"')"
  # The killed origin comes back, registered, before the next stream.
  local restarted
  restarted=$(now)
  start_origin "$p"
  await "o$p registered again" 20 registered "$p" "$restarted"
}

# summary SYSTEM prints one table row from kills.jsonl.
summary() {
  jq -rs --arg s "$1" '
    def pct(p): sort | if length == 0 then null else .[((length * p) | ceil) - 1] end;
    def f(x): if x == null then "-" else (x * 1000 | round / 1000 | tostring) end;
    def g(x): if x == null then "-" else (x | round | tostring) end;
    [.[] | select(.system == $s)] as $k
    | [$k[] | .gap_s | select(. != null)] as $gaps
    | [$k[] | ([.longest_segment_ms, .longest_playlist_ms] | max)] as $delay
    | [$s, ($k | length | tostring), ($gaps | length | tostring),
       f($gaps | pct(0.5)), f($gaps | pct(0.99)), f($gaps | max),
       f([$k[] | .asked_s | select(. != null)] | pct(0.99)),
       g($delay | pct(0.5)), g($delay | pct(0.99)), g($delay | max),
       g([$k[] | ([.longest_segment_ms, .longest_playlist_ms] | max) - (.longest_before_ms // 0)] | max),
       g([$k[] | .segment_p99_ms] | pct(0.99)),
       ([$k[] | .stalls] | add | tostring), ([$k[] | select(.stalls > 0)] | length | tostring),
       ([$k[] | .rebuffers] | add | tostring), ([$k[] | .errors] | add | tostring),
       ([$k[] | .never_started] | add | tostring)] | @tsv' "$RUN/kills.jsonl"
}

# ---------------------------------------------------------------- cost
# cost_phase NAME: SECONDS of steady state, then one result line.
cost_phase() {
  local what=$1 m0 m1 e0 e1 o0 o1 v0=0 v1=0
  sleep 3 # past the start's writes
  etcd_msgs >"$RUN/cost-$what-0.txt"
  e0=$(proc_secs "$ETCD_PID"); o0=$(proc_secs "$COST_O_PID")
  [[ -z ${COST_V_PID:-} ]] || v0=$(proc_secs "$COST_V_PID")
  sleep "$COST_SECONDS"
  etcd_msgs >"$RUN/cost-$what-1.txt"
  e1=$(proc_secs "$ETCD_PID"); o1=$(proc_secs "$COST_O_PID")
  [[ -z ${COST_V_PID:-} ]] || v1=$(proc_secs "$COST_V_PID")
  etcd_rates "$RUN/cost-$what-0.txt" "$RUN/cost-$what-1.txt" "$COST_SECONDS" | sort >"$RUN/cost-$what-rates.txt"
  COST_ROW[$what]="$(awk '$1 == "total" { printf "%s", $2 }' "$RUN/cost-$what-rates.txt") $(calc "($e1 - $e0) / $COST_SECONDS") $(calc "($o1 - $o0) / $COST_SECONDS / $COST_ORIGINS") $(calc "($v1 - $v0) / $COST_SECONDS / $COST_VIEWS")"
  log "cost, $what: $(tr '\n' ' ' <"$RUN/cost-$what-rates.txt")"
}

# cost_views [-lookups]: starts the views process, waits until it is ready.
cost_views() {
  "$BINDIR/dircost" -etcd "$ETCD" -role views -views "$COST_VIEWS" -streams "$COST_STREAMS" -max 300s "$@" >"$RUN/cost-views$*.log" 2>&1 &
  COST_V_PID=$!
  PIDS+=("$!")
  await "the views listing every stream" 120 grep -qx ready "$RUN/cost-views$*.log"
}

run_cost() {
  declare -gA COST_ROW
  log "directory cost: $COST_ORIGINS origins, $COST_STREAMS streams (each on two), $COST_VIEWS views"
  "$BINDIR/dircost" -etcd "$ETCD" -role origins -origins "$COST_ORIGINS" -streams "$COST_STREAMS" -max 600s >"$RUN/cost-origins.log" 2>&1 &
  COST_O_PID=$!
  PIDS+=("$!")
  await "the origins registered" 60 grep -qx ready "$RUN/cost-origins.log"
  COST_V_PID=""
  cost_phase origins
  cost_views
  cost_phase views
  stop "$COST_V_PID"
  cost_views -lookups
  cost_phase lookups
  stop "$COST_V_PID"
  LOOKUPS=$(sed -n 's/.*lookups [0-9]* (\([0-9]*\)\/s).*/\1/p' "$RUN/cost-views-lookups.log")
  stop "$COST_O_PID"
}

# ---------------------------------------------------------------- main
mkdir -p "$OUT" "$BINDIR"
exec 9>"$OUT/failover-run.lock"
if ! flock -n 9; then
  log "another bench/failover/run.sh is running; waiting up to ${WAIT_MAX}s"
  flock -w "$WAIT_MAX" 9 || { echo "run.sh: another bench/failover/run.sh still runs after ${WAIT_MAX}s" >&2; exit 1; }
fi
: >"$RESULTS"
install_missing nginx:nginx jq:jq curl:curl ss:iproute2 etcd:etcd-server ffmpeg:ffmpeg
wait_for_quiet
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log "building cmd/origin, cmd/pop, cmd/loadtest, bench/failover/dircost into $BINDIR"
for b in cmd/origin cmd/pop cmd/loadtest bench/failover/dircost; do
  (cd "$ROOT" && go build -o "$BINDIR/${b##*/}" "./$b") || die "build of $b failed"
done
rm -rf "$RUN"
mkdir -p "$RUN"

dirty=$(cd "$ROOT" && git status --porcelain -uall -- pop origin directory loadtest cmd internal 2>/dev/null | wc -l)
report "Failover benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
report "  tree:     $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$( ((dirty > 0)) && echo " + $dirty uncommitted file(s)"), $(go version | awk '{ print $3 }'), $(etcd --version | head -n1), nginx $(nginx -v 2>&1 | sed 's/.*version: nginx\///')"
report "  fleet:    etcd (1 member) + 2 cmd/origin -etcd -transcode=false (zones z0, z1), one ffmpeg tee per stream (640x360 1.5 Mb/s + AAC, 1-s GOP)"
report "  kills:    $KILLS per system, alternating; each on a fresh stream: $PLAYERS players (DASH share $DASH) for ${BEFORE}-$((BEFORE + 1)) s, SIGKILL of the primary, ${AFTER} s more; then the killed origin starts again"
report "  ours:     3 cmd/pop -etcd nodes sharing one key space, -hedge-after $HEDGE"
report "  nginx:    one nginx on 3 ports, proxy_cache (tmpfs), upstream o0 + o1 backup, proxy_next_upstream error timeout http_5xx, read timeout $HEDGE"
report "  machine before the start: load $(cut -d' ' -f1-3 /proc/loadavg)"
report ""

start_etcd
declare -a RTMP_PORT HTTP_PORT ORIGIN_PID
for i in 0 1; do
  RTMP_PORT[$i]=$(free_port)
  HTTP_PORT[$i]=$(free_port)
  start_origin "$i"
done
start_ours
for i in 0 1; do await "o$i registered" 20 registered "$i" 0; done
[[ " ${SYSLIST[*]} " != *" nginx "* ]] || start_nginx
: >"$RUN/kills.jsonl"
e0=$(etcd_msgs)
f0=$(now)
for ((k = 1; k <= KILLS; k++)); do
  for ((i = 0; i < ${#SYSLIST[@]}; i++)); do
    kill_once "${SYSLIST[$(((k - 1 + i) % ${#SYSLIST[@]}))]}" "$k"
  done
done
f1=$(now)
etcd_msgs >"$RUN/fleet-etcd-1.txt"
printf '%s\n' "$e0" >"$RUN/fleet-etcd-0.txt"
etcd_rates "$RUN/fleet-etcd-0.txt" "$RUN/fleet-etcd-1.txt" "$(calc "$f1 - $f0")" | sort >"$RUN/fleet-etcd-rates.txt"

fmt='%-6s %-5s %-8s %-7s %-7s %-7s %-7s %-8s %-8s %-8s %-9s %-9s %-6s %-11s %-9s %-6s %s'
report "$(printf "$fmt" system kills 'measured' 'gap p50' 'gap p99' 'gap max' 'asked' 'delay' 'delay' 'delay' 'excess' 'seg p99' stalls 'kills with' rebuffers errors 'never')"
report "$(printf "$fmt" '' '' 'gaps' 's' 's' 's' 'p99 s' 'p50 ms' 'p99 ms' 'max ms' 'max ms' 'switch ms' '' 'a stall' '' '' 'started')"
for s in "${SYSLIST[@]}"; do
  report "$(summary "$s" | awk -F'\t' -v fmt="$fmt" '{ printf fmt, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17 }')"
done
report ""
report "  gap: from the SIGKILL to the first byte the PoP got from the backup origin (ours: its log line \"the backup"
report "  origin answered\"; nginx: msec - request_time + upstream_header_time of the first response from o1 in its access"
report "  log); the backup holds a request for a segment not made yet, as the primary did, so a kill while the PoP"
report "  waits for the next segment shows its wait. asked (ours): from the kill to the PoP's first request to the"
report "  backup because the primary failed (its log). delay: per kill, the longest segment or playlist request (request to last byte) any player made from the"
report "  kill's second to ${WINDOW} s after it; excess: the most, over kills, by which that exceeded the longest request"
report "  from the players' third second to the kill (segments are streamed as they are packaged: about 1 s is normal);"
report "  seg p99 switch: the p99 over kills of the highest per-second segment p99 in that window. stalls: buffers empty"
report "  >= 2 s; rebuffers: empty spells of any length; errors: failed requests, by kind in $RUN/kills.jsonl."
if [[ " ${SYSLIST[*]} " == *" ours "* && " ${SYSLIST[*]} " == *" nginx "* ]]; then
  report ""
  report "  ours / nginx: $(jq -rs '
    def pct(p): sort | if length == 0 then null else .[((length * p) | ceil) - 1] end;
    def side(s): [.[] | select(.system == s)];
    def r(a; b): if a == null or b == null or b == 0 then "-" else ((a / b * 100 | round) / 100 | tostring) end;
    (side("ours") | [.[] | .gap_s | select(. != null)] | pct(0.99)) as $go
    | (side("nginx") | [.[] | .gap_s | select(. != null)] | pct(0.99)) as $gn
    | (side("ours") | [.[] | ([.longest_segment_ms, .longest_playlist_ms] | max)] | pct(0.99)) as $do
    | (side("nginx") | [.[] | ([.longest_segment_ms, .longest_playlist_ms] | max)] | pct(0.99)) as $dn
    | "gap p99 \(r($go; $gn))x, delay p99 \(r($do; $dn))x; stalls \(side("ours") | [.[] | .stalls] | add) vs \(side("nginx") | [.[] | .stalls] | add), errors \(side("ours") | [.[] | .errors] | add) vs \(side("nginx") | [.[] | .errors] | add)"' "$RUN/kills.jsonl")"
fi
report "  goals (#21): gap p99 < 1 s; 0 stalls."
report ""
report "etcd during the kills (2 origins, 3 PoP nodes; msgs received/s by method): $(tr '\n' ' ' <"$RUN/fleet-etcd-rates.txt")"

if ((COST)); then
  run_cost
  report ""
  report "Directory cost: $COST_ORIGINS origins listing $COST_STREAMS streams (each on two, newest segment advancing every second, load changing), $COST_VIEWS views, ${COST_SECONDS} s each phase"
  cfmt='%-30s %-14s %-12s %-16s %s'
  report "$(printf "$cfmt" phase 'etcd msgs/s' 'etcd CPU' 'CPU per origin' 'CPU per view')"
  for ph in origins views lookups; do
    read -r tot ecpu ocpu vcpu <<<"${COST_ROW[$ph]}"
    label=$ph
    case $ph in
      origins) label="origins alone"; vcpu="-" ;;
      views) label="+ $COST_VIEWS views, no lookup" ;;
      lookups) label="+ $COST_VIEWS views, $LOOKUPS lookups/s" ;;
    esac
    report "$(printf "$cfmt" "$label" "$tot" "$(calc "$ecpu * 100")%" "$(calc "$ocpu * 100")%" "$( [[ $vcpu == - ]] && echo - || echo "$(calc "$vcpu * 100")%")")"
  done
  for ph in origins views lookups; do report "  $ph: $(tr '\n' ' ' <"$RUN/cost-$ph-rates.txt")"; done
  report "  CPU in % of one core, from /proc; views with lookups spend theirs on the lookups. Goal (#21): etcd traffic"
  report "  independent of viewers (lookups), no per-request etcd traffic."
fi
report ""
report "reproduce: $REPRO"
report "results: $RESULTS; per-kill JSON, reports and logs: $RUN"
