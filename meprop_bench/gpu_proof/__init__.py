"""The GPU proof (``bash .ci/gpu-proof OUTDIR``): one prepared call that runs every CUDA
path of the suite on a GPU, each step under its own time limit, and sums up the evidence.

The steps and their limits live in :mod:`.steps` (the script runs what it lists), the
summary of a run in :mod:`.summary`; ``python -m meprop_bench.gpu_proof`` is the
script's helper (docs/gpu.md).
"""
