#!/usr/bin/env bash
# The README's kernel figures: one `meprop-bench check` per column, each writing its JSON
# (machine, its load over the run, arguments, every round's samples) beside this script.
set -euo pipefail
cd "$(dirname "$0")"
K="topk/native randk/native topk/sparse topk/masked unified/compact unified/native"
for t in 1 2; do for k in 41 410; do
  # shellcheck disable=SC2086  # $K is a list of kernels
  meprop-bench check --threads "$t" --k "$k" --kernels $K --rounds 15 \
    --json "b256-4096-k$k-t$t.json" --force
done; done
