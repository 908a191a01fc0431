#!/usr/bin/env bash
# The one test command: installs what the tests need when it is missing
# (ffmpeg for real publishers and probes, chromium for the browser tests,
# xmllint for the MPD schema check), then vets and runs every test with
# the race detector.
#
#   ./test.sh                          # everything
#   ./test.sh ./origin -run TestRoutes # some packages, with go test flags
#
# The MPD schema check uses the MPEG-DASH schema named by $DASH_MPD_XSD
# (or CI's copy beside the clone; it is not part of this repository);
# without it that check is logged as not done and every other check runs,
# unless DASH_MPD_XSD_REQUIRED is set (.ci/run sets it).
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v xmllint >/dev/null || need+=(libxml2-utils)
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

pkgs=()
for a in "$@"; do
  [[ $a == ./* ]] && pkgs+=("$a")
done
((${#pkgs[@]})) || pkgs=(./...)
(($#)) || set -- ./...

go vet "${pkgs[@]}"
# CI=true makes tests that need ffmpeg or chromium fail instead of skipping.
export CI="${CI:-true}"
if [[ $* != ./... ]]; then
  exec go test -race -count=1 -timeout 20m "$@"
fi
# Everything: the packages whose tests judge playback in real time with
# real players (stalls, latency: internal/app, cmd/origin's fleet) run
# one after the other, after the others, which run in parallel: on two
# cores, two of them at once starve each other's players.
realtime=(./internal/app ./cmd/origin)
mapfile -t others < <(go list ./... | grep -v -x -e "$(go list -m)/internal/app" -e "$(go list -m)/cmd/origin")
rc=0
go test -race -count=1 -timeout 20m "${others[@]}" || rc=$?
# The fast path's raw socket calls are package syscall's under the race
# detector (internal/fastpath/sock_sys_race_linux.go): its own, once more
# without it.
go test -count=1 -timeout 5m ./internal/fastpath || rc=$?
go test -race -count=1 -timeout 20m -p 1 "${realtime[@]}" || rc=$?
exit "$rc"
