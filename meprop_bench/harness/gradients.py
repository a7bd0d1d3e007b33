"""Real gradients for the benchmark suites: record them while training, load them back.

Synthetic Gaussian dY has none of the structure of a real one (dead ReLUs give zero
columns, a few units dominate), and that structure decides how much the row union or
a unified top-k keeps. :func:`record` trains the MNIST MLP on the embedded sample and
saves, at chosen steps and for every hidden layer (the ones meProp sparsifies), the full
output gradient dY arriving at the layer before any sparsification (B x n), the layer's
input x (B x d_in) and its weight w (n x d_in) as used in that step's forward.

File (``torch.save``): ``{"schema": "meprop-bench/gradients", "schema_version": 1,
"meta": {hidden, batch, steps, seed, method, k, layers, torch}, "samples": [{layer,
step, dy, x, w}, ...]}``; step s is the s-th minibatch (1-based), before its update.
:func:`cached_gradients` keeps one file per (hidden, batch, seed) under
``$MEPROP_BENCH_CACHE`` (default ``~/.cache/meprop-bench``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch.nn import functional as F

from meprop_bench.errors import MePropInputError
from meprop_bench.results.kinds import GRADIENTS
from meprop_bench.training.data import load_embedded, minibatches
from meprop_bench.training.loop import make_optimizer
from meprop_bench.training.models import build_mlp, hidden_layers

DEFAULT_STEPS = (1, 50, 200)
CACHED_STEPS = (1, 20)  # few, short: a 4096-wide, batch-256 model records in ~a minute


class GradientSample(NamedTuple):
    """One hidden layer at one step: dY (B x n, unsparsified), x (B x d_in), w (n x d_in)."""

    layer: str
    step: int
    dy: torch.Tensor
    x: torch.Tensor
    w: torch.Tensor


@contextmanager
def _capture(model: torch.nn.Module, step: int, out: list[dict[str, Any]]) -> Iterator[None]:
    """While open, each hidden layer's forward saves x and w, and its output's gradient dY."""

    def hook(name: str):
        def save(module, inputs, output):
            sample = {"layer": name, "step": step, "x": inputs[0].detach().clone(),
                      "w": module.weight.detach().clone()}  # fmt: skip
            out.append(sample)
            output.register_hook(lambda dy: sample.__setitem__("dy", dy.detach().clone()))

        return save

    handles = [mod.register_forward_hook(hook(name)) for name, mod in hidden_layers(model)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def record(
    path: str | os.PathLike[str],
    *,
    hidden: int = 500,
    batch: int = 50,
    steps: tuple[int, ...] = DEFAULT_STEPS,
    seed: int = 0,
    method: str = "topk",
    k: int | float = 20,
    layers: int = 2,
) -> Path:
    """Train the MLP (Adam, lr 1e-3) on the embedded sample for max(steps) minibatches and
    save each hidden layer's dY, x and w at ``steps`` to ``path``; return the path."""
    steps = tuple(sorted(set(steps)))
    if not steps or steps[0] < 1:
        raise MePropInputError(f"steps must be positive step numbers, got {steps}")
    data = load_embedded()
    if not 1 <= batch <= len(data.train.y):
        raise MePropInputError(f"batch={batch} must lie in 1..{len(data.train.y)}")
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    model = build_mlp(hidden=hidden, layers=layers, method=method, k=k)
    opt = make_optimizer("adam", model.parameters(), 1e-3)
    samples: list[dict[str, Any]] = []
    step = 0
    while step < steps[-1]:
        for xb, yb in minibatches(data.train, batch, order):
            if len(yb) < batch:
                continue  # every sample has the full batch size
            step += 1
            opt.zero_grad(set_to_none=True)
            if step in steps:
                with _capture(model, step, samples):
                    F.cross_entropy(model(xb), yb).backward()
            else:
                F.cross_entropy(model(xb), yb).backward()
            opt.step()
            if step == steps[-1]:
                break
    meta = dict(hidden=hidden, batch=batch, steps=list(steps), seed=seed, method=method, k=k,
                layers=layers, torch=str(torch.__version__))  # fmt: skip
    doc = {"schema": GRADIENTS.name, "schema_version": GRADIENTS.version, "meta": meta,
           "samples": samples}  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(doc, tmp)
    os.replace(tmp, path)  # whole or not at all, even with readers racing
    return path


def load_gradients(path: str | os.PathLike[str]) -> list[GradientSample]:
    """The samples of a file written by :func:`record`, in recording order."""
    path = Path(path)
    if not path.is_file():
        raise MePropInputError(f"gradient file not found: {path}")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged file
        raise MePropInputError(f"{path} is not a readable gradient file: {err}") from None
    GRADIENTS.check(doc, where=str(path))
    return [GradientSample(s["layer"], s["step"], s["dy"], s["x"], s["w"]) for s in doc["samples"]]


def cache_dir() -> Path:
    """``$MEPROP_BENCH_CACHE``, else ``~/.cache/meprop-bench``."""
    return Path(os.environ.get("MEPROP_BENCH_CACHE") or Path.home() / ".cache" / "meprop-bench")


def cached_gradients(hidden: int, batch: int, *, seed: int = 0) -> Path:
    """A recorded gradient file for this hidden width and batch size (top-k training,
    k = min(20, hidden), steps ``CACHED_STEPS``), recorded first if not cached yet."""
    path = cache_dir() / f"gradients-v{GRADIENTS.version}-h{hidden}-b{batch}-s{seed}.pt"
    if path.is_file():
        try:
            load_gradients(path)
            return path
        except MePropInputError as err:  # damaged or stale: record it again
            warnings.warn(f"re-recording the gradient cache: {err}", stacklevel=2)
    record(path, hidden=hidden, batch=batch, steps=CACHED_STEPS, seed=seed, k=min(20, hidden))
    return path
