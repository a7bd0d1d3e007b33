#!/usr/bin/env bash
# The committed figures: every preset at k = 1% and 5%, top-k and unified, at one thread
# and at two (run.sh 1, run.sh 2; default both). Run from the repository root with the
# environment active, on a quiet machine; each run's output and the machine's load before
# and after go to log.txt. Then: python docs/reports/model-2026-12-07/table.py.
set -u
out=docs/reports/model-2026-12-07
[ $# -gt 0 ] || set -- 1 2
for threads in "$@"; do
  for preset in mlp transformer-mlp-512 vit-b16-mlp transformer-mlp-2048 llama-mlp-512; do
    for method in topk unified; do
      for k in 0.01 0.05; do
        name="$preset-$method-k$k-t$threads"
        [ -e "$out/$name.json" ] && continue
        {
          echo "== $name; before: $(uptime)"
          start=$(date +%s)
          meprop-bench model --preset "$preset" --method "$method" --k "$k" \
            --threads "$threads" --out "$out/$name.json" 2>&1
          echo "== $name took $(( $(date +%s) - start )) s; after: $(uptime)"
        } >> "$out/log.txt"
      done
    done
  done
done
