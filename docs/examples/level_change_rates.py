"""How often :func:`meprop_bench.stats.level_changes` marks a change on synthetic series:
noise alone, noise with one run in ten 1.5x off, and a 20% step halfway (found at its
run). ``python docs/examples/level_change_rates.py`` (seeded; about 15 s of CPU)."""

import numpy as np

from meprop_bench.stats import level_changes

SERIES = 400  # per setting
ODD_RUNS, ODD_FACTOR = 0.1, 1.5
STEP = 1.2


def rates(runs: int, noise: float, rng: np.random.Generator) -> tuple[float, float, float]:
    """Fractions of series marked: noise only, noise and odd runs; a step found at its run."""
    half = runs // 2
    step = np.r_[np.zeros(half), np.full(runs - half, np.log(STEP))]
    false = odd = hit = 0
    for _ in range(SERIES):
        false += bool(level_changes(np.exp(rng.normal(0, noise, runs))))
        outliers = (rng.random(runs) < ODD_RUNS) * np.log(ODD_FACTOR)
        odd += bool(level_changes(np.exp(rng.normal(0, noise, runs) + outliers)))
        hit += level_changes(np.exp(rng.normal(0, noise, runs) + step)) == [half]
    return false / SERIES, odd / SERIES, hit / SERIES


def main() -> None:
    rng = np.random.default_rng(5)
    print("runs  noise  false mark  false mark (1 in 10 runs 1.5x)  20% step found")
    for runs, noise in ((6, 0.05), (12, 0.05), (12, 0.03), (30, 0.05)):
        false, odd, hit = rates(runs, noise, rng)
        print(f"{runs:4d}  {noise:5.0%}  {false:10.1%}  {odd:30.1%}  {hit:14.1%}")


if __name__ == "__main__":
    main()
