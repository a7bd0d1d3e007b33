"""Helpers for tests of training runs."""

TIMES = ("forward_s", "backward_s", "step_s")


def epoch_scores(run: dict) -> list[dict]:
    """A run's per-epoch records without the times, which no two runs share."""
    return [{k: v for k, v in e.items() if k not in TIMES} for e in run["epochs"]]
