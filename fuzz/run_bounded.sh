#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Time-bounded fuzzing for CI: runs one libFuzzer target of BUILD_DIR for
# SECONDS on a scratch copy of its seed corpus (the repository stays
# untouched), under HEAPGUARD_MODE=fuzz unless the caller picks a mode.
# Exits nonzero on any crash, leak, timeout or OOM and keeps the reproducers.
#
# usage: fuzz/run_bounded.sh BUILD_DIR SECONDS [TARGET]   (TARGET: alloc_ops)
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 BUILD_DIR SECONDS [TARGET]" >&2
  exit 2
fi
build_dir=$1
seconds=$2
target=${3:-alloc_ops}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "run_bounded: SECONDS must be a positive integer, got '$seconds'" >&2
  exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fuzzer=$build_dir/fuzz/${target}_fuzzer
seeds=$here/corpus/$target
if [[ ! -x $fuzzer ]]; then
  echo "run_bounded: $fuzzer not found; configure with -DHEAPGUARD_FUZZ=ON and build it" >&2
  exit 2
fi
if [[ ! -d $seeds ]]; then
  echo "run_bounded: no seed corpus at $seeds" >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/heapguard-fuzz-${target}.XXXXXX")
mkdir -p "$work/corpus" "$work/artifacts"
cp "$seeds"/* "$work/corpus/"
export HEAPGUARD_MODE=${HEAPGUARD_MODE:-fuzz}

echo "run_bounded: $target for ${seconds}s, HEAPGUARD_MODE=$HEAPGUARD_MODE, work dir $work"
# The outer timeout only catches a fuzzer that ignores -max_total_time
# (a hang outside the per-input -timeout, e.g. in start-up or shutdown).
set +e
timeout --kill-after=10 $((seconds + 120)) "$fuzzer" \
  -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/fuzz.log" 2>&1
rc=$?
set -e

# Show the head (start-up, mode line) and the tail (final stats or the crash).
if [[ $(wc -l <"$work/fuzz.log") -gt 80 ]]; then
  head -n 15 "$work/fuzz.log"
  echo "... ($(wc -l <"$work/fuzz.log") lines, full log: $work/fuzz.log)"
  tail -n 60 "$work/fuzz.log"
else
  cat "$work/fuzz.log"
fi

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -n 1)
if [[ -z $execs ]]; then
  execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$work/fuzz.log" | tail -n 1)
fi
if [[ -z $execs ]]; then
  execs=$(sed -n 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$work/fuzz.log" | tail -n 1)
fi
echo "run_bounded: executions: ${execs:-0}"

shopt -s nullglob
artifacts=("$work"/artifacts/*)
if [[ $rc -ne 0 || ${#artifacts[@]} -gt 0 ]]; then
  echo "run_bounded: FAILED (fuzzer exit status $rc)" >&2
  for a in "${artifacts[@]}"; do
    echo "run_bounded: reproducer $a (replay: HEAPGUARD_MODE=$HEAPGUARD_MODE $fuzzer $a)" >&2
  done
  echo "run_bounded: log and reproducers kept in $work" >&2
  exit 1
fi
echo "run_bounded: OK, no crash in ${seconds}s"
rm -rf "$work"
