#!/usr/bin/env bash
# Does the same training step move between runs, and what moves it? The paper's MLP step
# (784-500-500-10, B = 50, k = 20 or 5%, one thread), repeated in fresh processes:
#   1. `meprop-bench model --preset mlp` four times on a quiet machine, then four times
#      beside one busy-looping process (the other core's load);
#   2. the train-step suite, all seven cases and only dense + topk/native (the two runs
#      the issue compares), three times each, quiet.
# Run from the repository root with the environment active; outputs in variation/,
# each run's load in variation/log.txt; summary: python .../variation_summary.py.
set -u
here=docs/reports/model-2026-12-07
out=$here/variation
mkdir -p "$out"
log=$out/log.txt
model() {  # $1: name
  {
    echo "== $1; before: $(uptime)"
    meprop-bench model --preset mlp --k 0.04 --threads 1 --no-isolated --out "$out/$1.json" 2>&1
    echo "== $1; after: $(uptime)"
  } >> "$log"
}
suite() {  # $1: name, then pytest's -k filter, if any
  local name=$1; shift
  {
    echo "== $name; before: $(uptime)"
    python -m pytest suites/test_train_step.py --benchmark-only --meprop-threads 1 -q \
      --meprop-seed 1 --benchmark-json "$out/$name.json" "$@" 2>&1
    echo "== $name; after: $(uptime)"
  } >> "$log"
}
for i in 1 2 3 4; do model "model-quiet-$i"; done
python -c "while True: pass" & burner=$!
for i in 1 2 3 4; do model "model-busy-$i"; done
kill "$burner"
sleep 20
for i in 1 2 3; do
  suite "suite-all-$i"
  suite "suite-two-$i" -k "dense or (topk-native_)"
done
