"""Small pytest-benchmark and trainer JSON documents for the report, gate and main-job
tests: a machine, samples around a median, benchmark entries, sweeps and training runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from meprop_bench.harness.cases import Case

MACHINE = {
    "node": "box",
    "cpu": {"brand_raw": "Test CPU"},
    "cpu_model": "Test CPU",
    "cpu_count": 2,
    "cpu_capability": "AVX2",
    "torch": "2.13.0",
    "blas": "MKL",
    "torch_threads": 2,
}


def samples(median: float, rounds: int = 8, seed: int = 0, spread: float = 0.05) -> list[float]:
    """Per-call times (s) scattered ±``spread`` (a fraction) around ``median``."""
    rng = np.random.default_rng(seed)
    return list(median * (1 + rng.uniform(-spread, spread, rounds)))


def entry(extra: dict[str, Any], median: float, seed: int = 0, spread: float = 0.05) -> dict:
    """One benchmark as pytest-benchmark saves it, with raw samples."""
    data = samples(median, seed=seed, spread=spread)
    q1, med, q3 = np.percentile(data, [25, 50, 75])
    name = f"test[{extra.get('case_id', extra.get('method', 'x'))}-{seed}]"
    return {
        "group": extra.get("pair_key"),
        "name": name,
        "fullname": f"suites/test.py::{name}",
        "params": None,
        "param": None,
        "extra_info": extra,
        "options": {},
        "stats": {
            "min": min(data), "max": max(data), "mean": float(np.mean(data)),
            "stddev": float(np.std(data)), "rounds": len(data), "median": float(med),
            "iqr": float(q3 - q1), "q1": float(q1), "q3": float(q3), "data": data,
        },
    }  # fmt: skip


def kernel_case(suite: str, method: str, strategy: str | None, n: int, k: int | float,
                batch: int = 16, threads: int = 1, device: str = "cpu", median: float = 1e-3,
                seed: int = 0, spread: float = 0.05, **extra: Any) -> dict[str, Any]:  # fmt: skip
    """A backward/layer/paper/selection benchmark of a real Case's extra_info."""
    case = Case.make(method, strategy, batch, n, n, k, device=device)
    return entry({**case.extra_info(threads), "suite": suite, **extra}, median, seed, spread)


def train_step_case(method: str, strategy: str, median: float, sparse_grad: bool = False,
                    threads: int = 2, spread: float = 0.05):  # fmt: skip
    extra = {
        "suite": "train_step", "method": method, "strategy": strategy,
        "sparse_grad": sparse_grad, "hidden": 500, "batch": 50, "B": 50, "k": 20,
        "dtype": "float32", "device": "cpu", "threads": threads,
        "pair_key": "train h=500,B=50,k=20,float32,cpu", "max_step_speedup": 2.78,
    }  # fmt: skip
    return entry(extra, median, spread=spread)


def bench_doc(benchmarks: list[dict[str, Any]], machine: dict | None = None) -> dict[str, Any]:
    return {
        "machine_info": machine or MACHINE,
        "commit_info": {},
        "benchmarks": benchmarks,
        "datetime": "2026-01-01T00:00:00+00:00",
        "version": "5.2.3",
    }


def full_sweep(device: str = "cpu") -> list[dict[str, Any]]:
    """Dense and sparse cases over 2 widths, 2 batches, 2 ks, with selection, layer,
    paper and training-step cases: enough for every plot."""
    out = []
    for n in (64, 128):
        for batch in (8, 16):
            dense_t = n * batch * 1e-6
            for suite in ("backward", "layer"):
                out.append(kernel_case(suite, "dense", "dense", n, n, batch, device=device,
                                       median=dense_t))  # fmt: skip
                for k in (0.05, 0.25):
                    for method, strategy in (("topk", "masked"), ("unified", "compact")):
                        speed = (0.3 if method == "topk" else 0.6) / k
                        out.append(kernel_case(suite, method, strategy, n, k, batch,
                                               device=device, median=dense_t / speed))  # fmt: skip
            for k in (0.05, 0.25):
                for sel in ("topk", "unified"):
                    out.append(kernel_case("selection", sel, None, n, k, batch, device=device,
                                           median=dense_t * 0.02, selection=sel))  # fmt: skip
    out.append(kernel_case("paper", "dense", "dense", 500, 500, 50, median=2e-3,
                           paper_shape="mnist-mlp-b50"))  # fmt: skip
    out.append(kernel_case("paper", "unified", "compact", 500, 20, 50, median=2e-4,
                           paper_shape="mnist-mlp-b50"))  # fmt: skip
    out.append(train_step_case("dense", "dense", 4e-3))
    out.append(train_step_case("unified", "compact", 2e-3))
    out.append(train_step_case("unified", "compact", 1.5e-3, sparse_grad=True))
    return out


def training_doc(
    epochs: int = 3, seeds: tuple[int, ...] = (0, 1, 2), version: int = 3,
    recipes: tuple[str, ...] = ("torch",), sizes: tuple[int, ...] = (3000,),
    data: str = "embedded",
) -> dict[str, Any]:  # fmt: skip
    """A trainer file: dense h=500, topk/randk k=20 and dense h=20, over recipes,
    training-set sizes and seeds; version 2 adds each run's recipe and keep counts
    (topk's skewed), version 3 its data set, size and the per-epoch activation figures
    (top-k's logits grow)."""
    variants = [("dense", None, 500), ("topk", 20, 500), ("randk", 20, 500), ("dense", None, 20)]
    runs = []
    for recipe, size in ((r, s) for r in recipes for s in sizes):
        for method, k, hidden in variants:
            for seed in seeds:
                base = 0.9 if hidden == 500 and method != "randk" else 0.8
                base -= 0.01 * (max(sizes) > size)
                eps = [
                    {"epoch": e, "train_loss": 1 / e, "train_acc": base + 0.02 * e + 0.001 * seed,
                     "dev_acc": base + 0.01 * e, "test_acc": base + 0.01 * e - 0.002 * seed,
                     "forward_s": 0.1, "backward_s": 0.2 if k is None else 0.05 + 0.01 * seed,
                     "step_s": 0.05}
                    for e in range(1, epochs + 1)
                ]  # fmt: skip
                if version > 2:
                    for e in eps:
                        e.update(max_abs_logit=10.0 * e["epoch"] ** (2 if method == "topk" else 1),
                                 hidden_norm=[5.0 * e["epoch"], 9.0])  # fmt: skip
                label = f"{method}{'' if k is None else f' k={k}'} h={hidden}"
                run = {
                    "label": label, "method": method, "k": k, "hidden": hidden, "layers": 2,
                    "dropout": 0.0, "seed": seed, "optimizer": "adam", "lr": 0.001,
                    "batch_size": 50, "best_epoch": epochs, "best_dev_acc": eps[-1]["dev_acc"],
                    "test_acc_at_best": eps[-1]["test_acc"], "wall_s": 1.0, "epochs": eps,
                }  # fmt: skip
                if version > 1:
                    seen = 100 * epochs
                    kept = [
                        seen // (1 + u) if method == "topk" else seen // 2 for u in range(hidden)
                    ]
                    run.update(recipe=recipe, kept={"hidden0": kept, "hidden1": kept[::-1]},
                               kept_of=seen)  # fmt: skip
                if version > 2:
                    run.update(data=data, train_size=size)
                runs.append(run)
    return {
        "schema": "meprop-bench/training", "schema_version": version, "created": "2026-01-01",
        "meprop_bench_version": "0.1.0", "argv": [], "machine": MACHINE,
        "experiment": "quick", "config": {}, "data": {"name": data, "train": max(sizes)},
        "runs": runs,
    }  # fmt: skip


def write(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def model_doc(label: str = "tiny", speedups: tuple[float, ...] = (2.0, 4.0)) -> dict[str, Any]:
    """A ``meprop-bench model`` document: a step of two swapped layers whose in-step
    speedups are ``speedups``, alone twice as fast."""
    from meprop_bench.results.files import envelope
    from meprop_bench.results.kinds import MODEL

    rounds = 6

    def timed(dense: float, speedup: float) -> dict[str, Any]:
        d, m = samples(dense, rounds), samples(dense / speedup, rounds, seed=1)
        return {"dense_s": float(np.median(d)), "meprop_s": float(np.median(m)),
                "speedup": speedup, "low": speedup * 0.9, "high": speedup * 1.1,
                "dense_rounds_s": d, "meprop_rounds_s": m}  # fmt: skip

    parts = [{"part": p, **timed(t, s)} for p, t, s in
             (("step", 3e-3, 1.5), ("forward", 1e-3, 1.0), ("backward", 1.5e-3, 2.2),
              ("optimizer", 0.5e-3, 1.0))]  # fmt: skip
    layers = []
    for i, speedup in enumerate(speedups):
        t = timed(0.5e-3, speedup)
        layers.append({
            "name": f"fc{i + 1}", "shape": "512 x 768 -> 3072", "rows": 512, "d_in": 768,
            "n": 3072, "k": 31, "ideal_speedup": 3072 / 31, "kernel": "topk/native",
            "dx_in_step": i > 0, "in_step_dense_s": t["dense_s"], "in_step_meprop_s": t["meprop_s"],
            "in_step_speedup": speedup, "in_step_low": t["low"], "in_step_high": t["high"],
            "isolated_dense_s": 4e-4, "isolated_meprop_s": 4e-4 / (2 * speedup),
            "isolated_speedup": 2 * speedup, "isolated_low": 1.8 * speedup,
            "isolated_high": 2.2 * speedup, "dw_cosine": 0.3, "dx_cosine": None if i == 0 else 0.4,
            "dense_rounds_s": t["dense_rounds_s"], "meprop_rounds_s": t["meprop_rounds_s"],
        })  # fmt: skip
    params = {"model": label, "method": "topk", "strategy": "auto", "k": 0.01, "keep_dense": [],
              "optimizer": "Adam (fused)", "threads": 1, "rounds": rounds, "auto_rounds": True,
              "block": 5, "warmup_blocks": 2, "steady": True, "device": "cpu",
              "dtype": "float32", "seed": 0, "parameters": 4_722_432}  # fmt: skip
    memory = {"measure": "rss", "dense_peak_bytes": 900 * 2**20, "meprop_peak_bytes": 880 * 2**20,
              "dense_step_bytes": 40 * 2**20, "meprop_step_bytes": 20 * 2**20}  # fmt: skip
    return envelope(MODEL, machine=MACHINE, params=params, step_speedup=1.5,
                    step_speedup_low=1.35, step_speedup_high=1.65, step_bound=2.4, unstable=[],
                    parts=parts, layers=layers, kept_dense=[], memory=memory)  # fmt: skip
