#!/usr/bin/env bash
# The one test command: installs what the tests need when it is missing
# (ffmpeg for real publishers and probes, chromium for the browser tests,
# xmllint for the MPD schema check), then vets and runs every test with
# the race detector.
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

go vet ./...
# CI=true makes tests that need ffmpeg or chromium fail instead of skipping.
CI="${CI:-true}" go test -race -count=1 -timeout 20m ./...
