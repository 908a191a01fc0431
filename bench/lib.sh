# Shell helpers shared by the bench/*/run.sh scripts; source it after
# setting RESULTS (the results file) and RUN (the run's directory).
# OTHER_BENCH and WAIT_MAX are used by wait_for_quiet.

# log prints a progress line on stderr.
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# report prints a line of results and keeps it in the results file.
report() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

die() {
  printf '\nFAIL: %s\n' "$*" | tee -a "$RESULTS" >&2
  exit 1
}

# calc evaluates an arithmetic expression with awk.
calc() { awk "BEGIN { printf \"%.10g\", ($1) }"; }

# proc_secs prints the CPU seconds used so far by pid, user and system
# (0 once it is gone).
proc_secs() {
  local line f
  line=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  read -r -a f <<<"${line##*) }"
  awk -v t="$((f[11] + f[12]))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# tree_secs prints the CPU seconds used so far by pids and their children.
tree_secs() {
  local total=0 p line f
  for p in "$@" $(for q in "$@"; do pgrep -P "$q" || true; done); do
    line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -r -a f <<<"${line##*) }"
    total=$((total + f[11] + f[12] + f[13] + f[14]))
  done
  awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# install_missing WHAT:PACKAGE ...: installs, with apt-get, the Debian
# package of every WHAT missing: a command, or a file when WHAT is a path.
install_missing() {
  local need=() spec what
  for spec in "$@"; do
    what=${spec%%:*}
    if [[ $what == /* ]]; then
      [[ -e $what ]] || need+=("${spec#*:}")
    else
      command -v "$what" >/dev/null || need+=("${spec#*:}")
    fi
  done
  ((${#need[@]})) || return 0
  log "installing: ${need[*]}"
  local sudo=""
  [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  # Packages of servers try to start their services; where there is no
  # init system that fails harmlessly, and we never use those services.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
}

# wait_for_quiet waits, up to WAIT_MAX seconds, until no process matching
# OTHER_BENCH (another benchmark) runs.
wait_for_quiet() {
  local t others
  for ((t = 0; t <= WAIT_MAX; t += 10)); do
    others=$(pgrep -f "$OTHER_BENCH" | tr '\n' ' ' || true)
    [[ -z $others ]] && return 0
    ((t == 0)) && log "another benchmark is running (pids $others); waiting up to ${WAIT_MAX}s"
    sleep 10
  done
  die "another benchmark still runs after ${WAIT_MAX}s (pids $others); not measuring on a busy machine"
}

# free_port prints a TCP port nobody listens on, below the ephemeral range
# (32768-), never the same twice in a run.
USED_PORTS=" "
free_port() {
  local p i
  for ((i = 0; i < 100; i++)); do
    p=$((20000 + RANDOM % 12000))
    [[ $USED_PORTS == *" $p "* ]] && continue
    if [[ -z $(ss -Htan "sport = :$p") ]]; then
      USED_PORTS+="$p "
      echo "$p"
      return
    fi
  done
  die "no free TCP port found on 127.0.0.1"
}

# wait_listening PID PORT WHAT waits until PID (or a child or grandchild
# of it) listens on 127.0.0.1:PORT, for up to 15 s.
wait_listening() {
  local pid=$1 port=$2 what=$3 t owners c
  for ((t = 0; t < 150; t++)); do
    kill -0 "$pid" 2>/dev/null || die "$what exited at start (see its log in $RUN)"
    owners=$(ss -Htlnp "sport = :$port" 2>/dev/null || true)
    # ss may list the socket before it can name its process: ask again.
    if [[ -n $owners && $owners == *users:* ]]; then
      for c in "$pid" $(pgrep -P "$pid" || true) $(for g in $(pgrep -P "$pid" || true); do pgrep -P "$g" || true; done); do
        [[ $owners == *"pid=$c,"* ]] && return 0
      done
      die "$what: 127.0.0.1:$port is listened on by another process: $owners"
    fi
    sleep 0.1
  done
  die "$what did not listen on 127.0.0.1:$port within 15 s"
}

# pinned LIST COMMAND... runs COMMAND on the CPUs of LIST (taskset), or
# anywhere when LIST is empty, in place of the shell running it: started
# with &, $! is COMMAND's own pid, which stop reaches.
pinned() {
  local cpus=$1
  shift
  if [[ -n $cpus ]]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}

# stop stops processes: TERM, up to 15 s for graceful exits, then KILL.
stop() {
  local p t alive
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for ((t = 0; t < 75; t++)); do
    alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.2
  done
  for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# start_nginx_pop DIR ORIGIN_PORT CPUS PORT... runs nginx as a reference
# PoP in front of the origin on 127.0.0.1:ORIGIN_PORT, listening on each
# PORT, pinned to CPUS (taskset; empty: anywhere), its config and logs in
# DIR: proxy_cache in tmpfs, proxy_cache_lock, use_stale updating,
# sendfile; one worker when pinned, as Go sizes its own by affinity. It
# adds nginx's pid to PIDS and sets NGINX_PID and NGINX_CACHE (the cache
# directory, for the caller to remove).
start_nginx_pop() {
  local dir=$1 origin_port=$2 cpus=$3 i listen="" workers=auto
  shift 3
  local ports=("$@")
  for i in "${ports[@]}"; do
    listen+="        listen 127.0.0.1:$i backlog=4096;"$'\n'
  done
  [[ -z $cpus ]] || workers=1
  NGINX_CACHE=$(mktemp -d /dev/shm/flash-nginx-cache.XXXXXX 2>/dev/null || mktemp -d "$dir-cache.XXXXXX")
  mkdir -p "$dir/logs" "$dir/tmp"
  chmod 0777 "$NGINX_CACHE" "$dir/tmp" # workers run unprivileged when started by root
  cat >"$dir/nginx.conf" <<EOF2
# Written by bench/lib.sh (start_nginx_pop): nginx proxy_cache as a reference PoP.
daemon off;
master_process on;
worker_processes $workers;
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
    proxy_cache_path $NGINX_CACHE levels=1:2 keys_zone=pop:64m max_size=4g inactive=10m use_temp_path=off;
    upstream origin {
        server 127.0.0.1:$origin_port;
        keepalive 64;
    }
    server {
$listen
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The origin's Cache-Control decides lifetimes: 1 s for
            # playlists and MPDs, a year for segments, no-store for 404s.
            proxy_cache pop;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 5s;
            proxy_cache_use_stale updating;
            add_header X-Cache \$upstream_cache_status always;
        }
    }
}
EOF2
  nginx -t -q -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" 2>"$dir/logs/configtest.log" ||
    die "nginx rejected its config: $(cat "$dir/logs/configtest.log")"
  pinned "$cpus" nginx -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" >"$dir/logs/stdout.log" 2>&1 &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  for i in "${ports[@]}"; do wait_listening "$NGINX_PID" "$i" "nginx"; done
}
