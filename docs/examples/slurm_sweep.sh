#!/usr/bin/env bash
# A benchmark sweep as a SLURM job array: each array task runs one shard of the suites
# (--meprop-shard I/N), and a job that waits for the whole array merges every shard into
# one report. Run from the repository root; arguments go to pytest, the same for every
# task (a shard is only part of the sweep those arguments collect).
#
#   job=$(sbatch --parsable --array=0-3 docs/examples/slurm_sweep.sh --meprop-preset paper)
#   sbatch --dependency=afterok:$job docs/examples/slurm_sweep.sh --merge
#
# Without SLURM, a loop stands in for the array (tasks may also run on different hosts):
#
#   for i in 0 1 2 3; do
#     SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_TASK_COUNT=4 bash docs/examples/slurm_sweep.sh \
#       --meprop-preset quick
#   done
#   bash docs/examples/slurm_sweep.sh --merge
#
# SWEEP_DIR (default reports/runs/sweep) receives shard-I-of-N.json; the report goes to
# reports/<name of SWEEP_DIR>/. A task killed by its time limit leaves
# shard-I-of-N.json.partial.jsonl: python -m meprop_bench.recover turns it into a result.
#SBATCH --job-name=meprop-sweep
#SBATCH --cpus-per-task=4
#SBATCH --time=02:00:00
#SBATCH --output=meprop-sweep-%A_%a.log
set -euo pipefail

sweep_dir=${SWEEP_DIR:-reports/runs/sweep}
mkdir -p "$sweep_dir"

if [ "${1:-}" = "--merge" ]; then
  python -m meprop_bench.report "$sweep_dir" --name "$(basename "$sweep_dir")"
  exit
fi

: "${SLURM_ARRAY_TASK_ID:?run as an array task: sbatch --array=0-<N-1> $0}"
: "${SLURM_ARRAY_TASK_COUNT:?run as an array task: sbatch --array=0-<N-1> $0}"
# --array=1-4 works as well as --array=0-3: the shard index counts from the lowest task.
index=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))
count=$SLURM_ARRAY_TASK_COUNT
python -m pytest suites --benchmark-only -p no:cacheprovider -q \
  --meprop-shard "$index/$count" \
  --benchmark-json "$sweep_dir/shard-$index-of-$count.json" "$@"
