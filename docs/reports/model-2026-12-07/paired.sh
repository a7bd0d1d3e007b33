#!/usr/bin/env bash
# The train-step suite with each sparse step timed beside its dense partner (schema 5):
# does the paired ratio hold between runs where the ratio of separate cases did not?
# The paper's MLP step (784-500-500-10, B = 50, k = 20), one thread, all seven cases,
# the quick preset's 10 rounds, fresh processes: three runs on a quiet machine, then
# three beside one busy-looping process (the other core's load).
# Run from the repository root with the environment active; outputs in paired/, each
# run's load in paired/log.txt; summary: python .../paired_summary.py.
set -u
here=docs/reports/model-2026-12-07
out=$here/paired
mkdir -p "$out"
log=$out/log.txt
suite() {  # $1: name
  {
    echo "== $1; before: $(uptime)"
    python -m pytest suites/test_train_step.py --benchmark-only --meprop-threads 1 -q \
      --meprop-seed 1 --benchmark-json "$out/$1.json" 2>&1
    echo "== $1; after: $(uptime)"
  } >> "$log"
}
for i in 1 2 3; do suite "quiet-$i"; done
python -c "while True: pass" & burner=$!
for i in 1 2 3; do suite "busy-$i"; done
kill "$burner"
