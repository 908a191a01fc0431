#!/usr/bin/env bash
# Archive benchmark (issue #24), in one run on this machine:
#
#  1. What archiving costs live ingest: bench/ingest/run.sh's CPU phase
#     with our origin archiving every stream to this machine's disk
#     (-archive), with -archive-fsync=false, and without, alternating
#     round by round (SYSTEMS=ours,archive,archive-nosync): CPU-seconds
#     per stream-second (goal: at most 1.1x) and segment availability
#     p99 (goal: unchanged), and what the archive wrote, dropped and how
#     fast.
#  2. Whether the archive keeps up with 20 streams of 2.6 Mb/s with the
#     default ladder on this disk: bench/archive/keepup, in real time,
#     then as fast as it writes (the headroom).
#
#   bench/archive/run.sh                    # ROUNDS=3, D=60, 20 streams for 60 s (~14 min)
#   ROUNDS=1 D=20 KEEPUP_SECONDS=20 bench/archive/run.sh   # a quick check
#
# Settings (environment): N (10), D (60), WARMUP (10), ROUNDS (3) of
# bench/ingest/run.sh; ARCHIVE_DIR (bench/out/archive-data: on disk,
# not tmpfs); KEEPUP_STREAMS (20), KEEPUP_SECONDS (60), KEEPUP_HEADROOM
# (20). Results: bench/out/archive-results.txt.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/bench/out
RESULTS=$OUT/archive-results.txt
N=${N:-10}
D=${D:-60}
WARMUP=${WARMUP:-10}
ROUNDS=${ROUNDS:-3}
ARCHIVE_DIR=${ARCHIVE_DIR:-$OUT/archive-data}
KEEPUP_STREAMS=${KEEPUP_STREAMS:-20}
KEEPUP_SECONDS=${KEEPUP_SECONDS:-60}
KEEPUP_HEADROOM=${KEEPUP_HEADROOM:-20}
for v in N D WARMUP ROUNDS KEEPUP_STREAMS KEEPUP_SECONDS KEEPUP_HEADROOM; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "run.sh: $v must be a whole number, not '${!v}'" >&2; exit 2; }
done
mkdir -p "$OUT"

# 1. CPU and availability, archive on and off, alternating.
N=$N D=$D WARMUP=$WARMUP ROUNDS=$ROUNDS PHASES=cpu SYSTEMS=ours,archive,archive-nosync ARCHIVE_DIR=$ARCHIVE_DIR \
  "$ROOT/bench/ingest/run.sh"
cp "$OUT/ingest-results.txt" "$RESULTS"

# 2. Keeping up with 20 streams and their ladders, on the same disk.
{
  echo ""
  (cd "$ROOT" && go run ./bench/archive/keepup -dir "$ARCHIVE_DIR/keepup" \
    -streams "$KEEPUP_STREAMS" -seconds "$KEEPUP_SECONDS" -headroom "$KEEPUP_HEADROOM")
  echo ""
  echo "reproduce (from the repository root): N=$N D=$D WARMUP=$WARMUP ROUNDS=$ROUNDS KEEPUP_STREAMS=$KEEPUP_STREAMS KEEPUP_SECONDS=$KEEPUP_SECONDS KEEPUP_HEADROOM=$KEEPUP_HEADROOM bench/archive/run.sh"
} | tee -a "$RESULTS"
rm -rf "${ARCHIVE_DIR:?}"
echo "results: $RESULTS"
