#!/usr/bin/env bash
# Why top-k falls behind on Fashion-MNIST: top-k k=20 beside dense h=500 under each
# setting the paper's method leaves open (optimizer, learning rate, minibatch, clipping
# with the authors' recipe, dropout, k), 10,000 training images, 10 epochs, 2 seeds.
# Usage: bash ablation.sh OUTDIR   (one file per setting; about 25 CPU-minutes on 1 thread)
set -euo pipefail
out=${1:?usage: ablation.sh OUTDIR}
mkdir -p "$out"
common=(--data fashion --train-size 10000 --epochs 10 --seeds 0 1 --threads 1)
train() {  # NAME then the options of one configuration
  local name=$1; shift
  local again=()
  [ -e "$out/$name.json" ] && return
  [ -e "$out/$name.journal.jsonl" ] && again=(--resume)  # an interrupted run goes on
  meprop-bench train "${common[@]}" "$@" "${again[@]}" --out "$out/$name.json"
}
for method in topk dense; do
  m=(--method "$method"); [ "$method" = topk ] && m+=(--k 20)
  train "$method-adam-1e-3" "${m[@]}"
  train "$method-adam-1e-4" "${m[@]}" --lr 1e-4
  train "$method-adagrad-0.1" "${m[@]}" --optimizer adagrad --lr 0.1
  train "$method-adagrad-0.01" "${m[@]}" --optimizer adagrad --lr 0.01
  train "$method-batch-10" "${m[@]}" --batch-size 10
  train "$method-dropout-0.2" "${m[@]}" --dropout 0.2
  train "$method-authors" "${m[@]}" --recipe authors
  train "$method-authors-1e-4" "${m[@]}" --recipe authors --lr 1e-4
done
for k in 80 250; do
  train "topk-k$k-adam-1e-3" --method topk --k "$k"
done
