#!/usr/bin/env bash
# The authors recipe's 55,000-image runs of the full-scale set, one configuration a file,
# taken from a shared queue by as many of these lanes as there are free cores (start
# one per core; each claims the next configuration with an atomic mkdir).
# Usage: bash lanes.sh OUTDIR
set -euo pipefail
out=${1:?usage: lanes.sh OUTDIR}
mkdir -p "$out"
common=(--data fashion --train-size 55000 --recipe authors --epochs 20 --seeds 0 1 2 --threads 1)
queue=(
  "dense-h500:--method dense"
  "topk-k20:--method topk --k 20"
  "dense-h20:--method dense --hidden 20"
  "randk-k20:--method randk --k 20"
  "topk-k5:--method topk --k 5"
  "randk-k5:--method randk --k 5"
  "topk-k80:--method topk --k 80"
  "randk-k80:--method randk --k 80"
)
for item in "${queue[@]}"; do
  name=${item%%:*}
  read -r -a options <<< "${item#*:}"
  mkdir "$out/$name.claimed" 2>/dev/null || continue  # another lane has it
  meprop-bench train "${common[@]}" "${options[@]}" --out "$out/authors-55k-$name.json"
done
