#!/usr/bin/env bash
# Does any setting within the paper's method keep top-k from falling behind on
# Fashion-MNIST? Top-k k=20 (and dense h=500 beside it where the setting changes dense
# too) under other optimizers, learning rates, minibatches, dropout and k; 10,000
# training images, 10 epochs, 2 seeds. (Clipping: the authors' recipe, in the set.)
# Usage: bash ablation.sh OUTDIR   (one file per setting; an interrupted one resumes)
set -euo pipefail
out=${1:?usage: ablation.sh OUTDIR}
mkdir -p "$out"
common=(--data fashion --train-size 10000 --epochs 10 --seeds 0 1 --threads 1)
train() {  # NAME then the options of one configuration
  local name=$1 again=()
  shift
  [ -e "$out/$name.json" ] && return
  [ -e "$out/$name.journal.jsonl" ] && again=(--resume)
  meprop-bench train "${common[@]}" "$@" "${again[@]}" --out "$out/$name.json"
}
topk=(--method topk --k 20)
dense=(--method dense)
train topk-adam-1e-3 "${topk[@]}"
train dense-adam-1e-3 "${dense[@]}"
train topk-adam-1e-4 "${topk[@]}" --lr 1e-4
train topk-adagrad-0.1 "${topk[@]}" --optimizer adagrad --lr 0.1
train dense-adagrad-0.1 "${dense[@]}" --optimizer adagrad --lr 0.1
train topk-adagrad-0.01 "${topk[@]}" --optimizer adagrad --lr 0.01
train topk-dropout-0.2 "${topk[@]}" --dropout 0.2
train topk-k80 --method topk --k 80
train topk-k250 --method topk --k 250
train topk-batch-10 "${topk[@]}" --batch-size 10
train dense-batch-10 "${dense[@]}" --batch-size 10
