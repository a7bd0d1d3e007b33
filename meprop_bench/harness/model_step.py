"""Training steps of a whole model, dense against meProp, timed in one process:
``meprop-bench model``'s engine.

The protocol (reasons in docs/model.md):

1. The factory builds the model; a deep copy gets meProp in every ``nn.Linear`` but
   the kept-dense ones (:func:`~meprop_bench.core.layer.swap_linear`), so both start
   from the same weights. Each side has its own optimizer (fused where torch has one).
2. Gradient similarity, on the factory's batch: per swapped layer the cosine of
   meProp's dW and dX to dense's, from each side's first step (whose optimizer step
   creates its state), taken on the weights both sides start from.
3. Native kernels compile (``kernel.prepare()``), then warm-up: blocks of steps of each
   side in turn until each side's block time is steady
   (:func:`~meprop_bench.harness.steady.warm_up`, or its ``WARMUP_LIMIT_S`` passed).
4. Timed rounds: each round is one block of consecutive steps of each side
   (:mod:`~meprop_bench.harness.steady`), the side that goes first alternating round by
   round. Each round gives the ratio dense / meProp of
   the block's mean step time (and of its forward, backward and optimizer parts, and of
   each swapped layer's backward, timed by hooks on its autograd node); a speedup is the
   median of a round's ratios with its 95% bootstrap interval
   (:func:`~meprop_bench.stats.median_interval`).
   Each part's minor page faults per step are counted beside its time: a step that
   allocates fresh pages (a new gradient in 4 KiB pages, freed again by ``zero_grad``)
   pays for them, and the two sides need not pay alike.
5. Peak memory: one untimed step of each side after the first (before the warm-up).
   After the rounds, each swapped layer's backward alone, at the same shape and k, by
   the check's engine (:func:`~meprop_bench.harness.check.run_check`), beside its
   in-step figure; layers of the same shape, k and kernel (LLaMA's gate and up) are
   measured once.
"""

from __future__ import annotations

import copy
import fnmatch
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from meprop_bench.core import allocator
from meprop_bench.core.kernels import Kernel, fastest_kernel, get_kernel
from meprop_bench.core.layer import MePropLinear, swap_linear
from meprop_bench.errors import MePropInputError
from meprop_bench.harness.check import run_check
from meprop_bench.harness.model_presets import Factory, call_factory, first_line
from meprop_bench.harness.options import DTYPES, resolve_device
from meprop_bench.harness.steady import BLOCK_SECONDS, WARMUP_LIMIT_S, block_size, clamp, warm_up
from meprop_bench.results.files import envelope
from meprop_bench.results.kinds import MODEL
from meprop_bench.results.machine import machine_info
from meprop_bench.results.machine import threads as threads_in_force
from meprop_bench.results.machine_state import Watch
from meprop_bench.stability import instability, time_spread
from meprop_bench.stats import median_interval

PARTS = ("step", "forward", "backward", "optimizer")
#: Optimizer name -> (class, state tensors it keeps per parameter).
OPTIMIZERS = {"adam": (torch.optim.Adam, 2), "adamw": (torch.optim.AdamW, 2),
              "sgd": (torch.optim.SGD, 0)}  # fmt: skip
ROUNDS_BUDGET_S = 50.0  # --rounds auto: as many rounds as fit in this, within ROUNDS_RANGE
ROUNDS_RANGE = (5, 30)
ISOLATED_BUDGET_S = 15.0  # the isolated kernels' rounds: as many as fit, within ISOLATED_RANGE
ISOLATED_RANGE = (3, 15)
VIEW_NODES = frozenset({"ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0",
                        "AsStridedBackward0"})  # fmt: skip
Progress = Callable[[str], None]


def _faults() -> int:
    """Minor page faults so far (0 where the system does not count them)."""
    return allocator.minor_faults() or 0


def _clock(device: torch.device) -> Callable[[], float]:
    if device.type == "cuda":

        def now() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()

        return now
    return time.perf_counter


class LayerTimer:
    """Each named layer's backward inside a step: from the moment its output's gradient
    reaches the layer's autograd node (views passed through) until that node returns
    (dX, dW and db computed), summed over the layer's calls, by hooks on the nodes that
    each forward registers. ``totals`` accumulate until :meth:`reset`."""

    def __init__(self, layers: dict[str, nn.Module], clock: Callable[[], float]) -> None:
        self.clock = clock
        self.totals = dict.fromkeys(layers, 0.0)
        self.handles = [layer.register_forward_hook(self._on_forward(name))
                        for name, layer in layers.items()]  # fmt: skip

    def _on_forward(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            first = getattr(output, "grad_fn", None)
            if first is None:
                return
            last = first
            while last.name() in VIEW_NODES and last.next_functions[0][0] is not None:
                last = last.next_functions[0][0]
            start = [0.0]

            def begin(grad_outputs: Any) -> None:
                start[0] = self.clock()

            def end(grad_inputs: Any, grad_outputs: Any) -> None:
                self.totals[name] += self.clock() - start[0]

            first.register_prehook(begin)
            last.register_hook(end)

        return hook

    def reset(self) -> None:
        self.totals = dict.fromkeys(self.totals, 0.0)


@dataclass
class Side:
    """One model (dense or meProp) with its optimizer, stepped and timed."""

    model: nn.Module
    batch: Any
    loss_fn: Callable[[nn.Module, Any], torch.Tensor]
    optimizer: torch.optim.Optimizer
    timer: LayerTimer
    clock: Callable[[], float]

    def step(self) -> dict[str, float]:
        """One training step: forward (the loss), backward, optimizer step and
        zero_grad (which frees the gradients); each part's seconds, and its minor page
        faults under ``faults:PART`` (0 where the system does not count them)."""
        f0, t0 = _faults(), self.clock()
        loss = self.loss_fn(self.model, self.batch)
        f1, t1 = _faults(), self.clock()
        loss.backward()
        f2, t2 = _faults(), self.clock()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        f3, t3 = _faults(), self.clock()
        times = {"step": t3 - t0, "forward": t1 - t0, "backward": t2 - t1, "optimizer": t3 - t2}
        faults = {"step": f3 - f0, "forward": f1 - f0, "backward": f2 - f1, "optimizer": f3 - f2}
        return {**times, **{f"faults:{part}": count for part, count in faults.items()}}

    def block(self, steps: int) -> dict[str, Any]:
        """``steps`` consecutive steps: the mean of each part (seconds, and page faults
        under ``faults:PART``), and ``layers``, each timed layer's mean backward."""
        self.timer.reset()
        sums: dict[str, float] = {}
        for _ in range(steps):
            for key, value in self.step().items():
                sums[key] = sums.get(key, 0.0) + value
        means: dict[str, Any] = {key: total / steps for key, total in sums.items()}
        means["layers"] = {name: total / steps for name, total in self.timer.totals.items()}
        return means


@dataclass
class Swapped:
    """One swapped layer: its name, shape, k, kernel and what the similarity pass saw."""

    name: str
    rows: int
    d_in: int
    n: int
    k: int
    kernel: Kernel
    dx_in_step: bool
    dw_cosine: float = math.nan
    dx_cosine: float | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def keep_dense_rule(patterns: Sequence[str]) -> Callable[[str, nn.Linear], bool]:
    """swap_linear's ``skip``: a layer whose name matches any fnmatch pattern stays dense."""
    return lambda name, layer: any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _to(batch: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """``batch`` on ``device``, its floating tensors in ``dtype`` (leaves keep
    requires_grad); tuples, lists and dicts are walked."""
    if isinstance(batch, torch.Tensor):
        if batch.device == device and (not batch.is_floating_point() or batch.dtype == dtype):
            return batch
        moved = batch.detach().to(device, dtype if batch.is_floating_point() else None)
        return moved.requires_grad_(batch.requires_grad)
    if isinstance(batch, tuple | list):
        return type(batch)(_to(b, device, dtype) for b in batch)
    if isinstance(batch, dict):
        return {key: _to(value, device, dtype) for key, value in batch.items()}
    return batch


def _available_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    match = re.search(r"^MemAvailable:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def check_fits(model: nn.Module, optimizer: str, device: torch.device) -> None:
    """Refuse, in one line with the size, a model whose meProp copy, gradients and
    optimizer states would not fit in the memory available now."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    need = params * (1 + 2 + 2 * OPTIMIZERS[optimizer][1])
    available = _available_bytes(device)
    if available is not None and need > available:
        raise MePropInputError(
            f"the model does not fit in memory: its {params / 2**30:.2f} GiB of parameters "
            f"with a meProp copy, both sides' gradients and {optimizer} states need about "
            f"{need / 2**30:.1f} GiB, and {available / 2**30:.1f} GiB is available on {device}"
        )


def out_of_memory(err: BaseException) -> MePropInputError | None:
    """The one-line error for running out of memory (with the size torch tried to
    allocate, when it says), or None when ``err`` is something else."""
    text = str(err)
    if not isinstance(err, MemoryError | torch.OutOfMemoryError) and "allocate" not in text:
        return None
    tried = re.search(r"allocate (\d+) bytes", text) or re.search(
        r"allocate ([\d.]+ [KMGT]i?B)", text
    )
    size = ""
    if tried:
        value = tried.group(1)
        size = f" {int(value) / 2**30:.2f} GiB" if value.isdigit() else f" {value}"
    return MePropInputError(
        f"the model does not fit in memory: a step tried to allocate{size or ' more'} "
        "(fewer tokens, a smaller batch or a smaller model)"
    )


def _optimizer(name: str, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer, torch's fused implementation where it has one (its fastest step;
    the per-parameter loop would add a fixed cost to both sides)."""
    cls, _ = OPTIMIZERS[name]
    lr = 1e-3
    try:
        return cls(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, lr=lr)


def _optimizer_label(opt: torch.optim.Optimizer) -> str:
    return type(opt).__name__ + (" (fused)" if opt.defaults.get("fused") else "")


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two gradients, in float64 (1.0 for two zero gradients)."""
    a, b = a.detach().flatten().double(), b.detach().flatten().double()
    norms = a.norm() * b.norm()
    if norms == 0:
        return 1.0 if torch.equal(a, b) else 0.0
    return float((a @ b) / norms)


def _gradients(
    model: nn.Module,
    batch: Any,
    loss_fn: Callable[..., torch.Tensor],
    names: list[str],
    seed: int,
    where: str,
) -> dict[str, tuple[torch.Tensor, torch.Tensor | None, int]]:
    """Per named layer, after one backward on ``batch``: dW, dX (None where the
    layer's input needs no gradient) and the rows of its input. The model's ``.grad``
    stay for the optimizer's step."""
    dxs: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    rows = dict.fromkeys(names, 0)
    handles = []
    for name in names:

        def pre(module: nn.Module, args: tuple, name: str = name) -> tuple | None:
            x = args[0]
            rows[name] += x.numel() // x.shape[-1]
            if not x.requires_grad:
                return None
            x = x.view_as(x)  # a node of its own: this layer's dX alone
            x.register_hook(lambda g, name=name: dxs[name].append(g.detach().clone()))
            return (x, *args[1:])

        handles.append(model.get_submodule(name).register_forward_pre_hook(pre))
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    try:
        _loss(model, batch, loss_fn, where).backward()
    finally:
        for handle in handles:
            handle.remove()
    out = {}
    for name in names:
        grad = model.get_submodule(name).weight.grad
        dw = grad.to_dense() if grad.is_sparse else grad.detach().clone()
        dx = torch.cat([g.flatten() for g in dxs[name]]) if dxs[name] else None
        out[name] = (dw, dx, rows[name])
    return out


def _first_step(
    side: Side, names: list[str], seed: int, where: str
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor | None, int]], float]:
    """A side's first training step, whose backward is the gradient-similarity pass
    (:func:`_gradients`, on the weights both sides start from); (its gradients, the
    step's seconds). It creates the optimizer's state and the kernels' workspaces, as
    a separate untimed step did before: on LLaMA's MLP at one thread that step took
    12 s of a run's two minutes."""
    start = side.clock()
    grads = _gradients(side.model, side.batch, side.loss_fn, names, seed, where)
    side.optimizer.step()
    side.optimizer.zero_grad(set_to_none=True)
    return grads, side.clock() - start


def _loss(model: nn.Module, batch: Any, loss_fn: Callable[..., Any], where: str) -> torch.Tensor:
    """The loss, checked: a loss_fn that raises or returns no scalar tensor with a
    gradient is the factory's mistake, told in one line (before any timing)."""
    try:
        loss = loss_fn(model, batch)
    except Exception as err:  # the user's code
        if out_of_memory(err):
            raise
        raise MePropInputError(f"{where}: loss_fn(model, batch) raised "
                               f"{type(err).__name__}: {first_line(err)}") from None  # fmt: skip
    if not (isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.requires_grad):
        got = (f"a tensor of shape {tuple(loss.shape)}" + ("" if loss.requires_grad else
               " that needs no gradient") if isinstance(loss, torch.Tensor)
               else type(loss).__name__)  # fmt: skip
        raise MePropInputError(f"{where}: loss_fn(model, batch) must return a scalar tensor "
                               f"with a gradient, got {got}")  # fmt: skip
    return loss


def _peak_memory(side: Side, device: torch.device) -> tuple[int | None, int | None]:
    """(peak, at start) bytes of one step of ``side``: CUDA's allocated memory, or on
    Linux the process's resident set (VmHWM, its peak reset through clear_refs), after
    the allocator's free memory went back to the system (else memory freed by earlier
    steps, still resident, hides what this step needs)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        side.step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device), start
    status = Path(f"/proc/{os.getpid()}/status")
    try:
        allocator.release_free_memory()
        Path(f"/proc/{os.getpid()}/clear_refs").write_text("5")
        start = _status_kb(status.read_text(), "VmRSS")
        side.step()
        peak = _status_kb(status.read_text(), "VmHWM")
    except OSError:
        return None, None
    return peak, start


def _status_kb(text: str, key: str) -> int:
    return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE).group(1)) * 1024


def _interval(dense: Sequence[float], sparse: Sequence[float]) -> dict[str, Any]:
    """Medians of both sides' rounds, and the median of the per-round ratios with its
    95% interval."""
    ratios = np.asarray(dense) / np.asarray(sparse)
    low, high = median_interval(ratios)
    return {"dense_s": float(np.median(dense)), "meprop_s": float(np.median(sparse)),
            "speedup": float(np.median(ratios)), "low": low, "high": high,
            "dense_rounds_s": list(map(float, dense)),
            "meprop_rounds_s": list(map(float, sparse))}  # fmt: skip


def _faults_record(part: str, records: list[list[dict[str, Any]]]) -> dict[str, float | None]:
    """Each side's median page faults per step in ``part`` over the rounds (null where
    the system does not count them)."""
    if allocator.minor_faults() is None:
        return {"dense_faults": None, "meprop_faults": None}
    dense, sparse = ([b[f"faults:{part}"] for b in side] for side in records)
    return {"dense_faults": float(np.median(dense)), "meprop_faults": float(np.median(sparse))}


def _warm_up(sides: tuple[Side, Side], block: int, progress: Progress) -> tuple[int, bool, float]:
    """Blocks of each side in turn until both are steady; (blocks a side, steady, the
    seconds of the last block of both sides)."""
    done, steady, last = warm_up(
        [lambda side=side: side.block(block)["step"] * block for side in sides], WARMUP_LIMIT_S
    )
    verdict = "steady" if steady else f"NOT steady after {WARMUP_LIMIT_S:g} s"
    progress(f"warm-up: {done} blocks of {block} steps a side, {verdict}")
    return done, steady, sum(last)


def run_model(
    factory: Factory,
    *,
    name: str,
    k: int | float,
    method: str,
    strategy: str | None,
    keep_dense: Sequence[str],
    optimizer: str,
    threads: int | None,
    rounds: int | None,
    block: int | None,
    device: str,
    dtype: str,
    seed: int,
    malloc: str = "default",
    isolated: bool = True,
    progress: Progress = print,
) -> dict[str, Any]:
    """Time training steps of the model ``factory`` builds, dense against meProp (see
    the module's protocol); ``rounds`` and ``block`` None choose themselves. Returns
    the ``meprop-bench/model`` document."""
    where = f"the factory of {name}"
    if method == "dense":
        raise MePropInputError("--method: meProp's methods are topk, unified and randk")
    get_kernel(method, strategy)  # an unknown strategy is refused before any work
    torch_device = resolve_device(device, "--device")
    allocator.set_mode(malloc)
    torch_dtype = DTYPES[dtype]
    clock = _clock(torch_device)
    with threads_in_force(threads) as n_threads:
        torch.manual_seed(seed)
        model, batch, loss_fn = call_factory(factory, where)
        model = model.to(torch_device, torch_dtype)
        batch = _to(batch, torch_device, torch_dtype)
        check_fits(model, optimizer, torch_device)
        try:
            meprop = copy.deepcopy(model)
        except Exception as err:  # the user's model
            raise MePropInputError(f"{where}: the model cannot be deep-copied "
                                   f"({type(err).__name__}: {err})") from None  # fmt: skip
        meprop = swap_linear(meprop, k=k, method=method, strategy=strategy,
                             skip=keep_dense_rule(keep_dense))  # fmt: skip
        names = [n for n, m in meprop.named_modules() if type(m) is MePropLinear]
        kept = [n for n, m in meprop.named_modules() if type(m) is nn.Linear]
        if not names:
            raise MePropInputError(f"{where}: every nn.Linear is kept dense by --keep-dense "
                                   f"{' '.join(keep_dense)}; nothing to swap")  # fmt: skip
        dense_names = f"; dense: {', '.join(kept)}" if kept else ""
        progress(f"model {name}: {sum(p.numel() for p in model.parameters()):,} parameters; "
                 f"meProp in {', '.join(names)}{dense_names}")  # fmt: skip

        sides = tuple(
            Side(m, batch, loss_fn,
                 _optimizer(optimizer, list(m.parameters())),
                 LayerTimer({n: m.get_submodule(n) for n in names}, clock), clock)
            for m in (model, meprop)
        )  # fmt: skip
        # each side's first step (optimizer state, workspaces) is the similarity pass
        (dense_grads, first), (sparse_grads, _) = (
            _first_step(side, names, seed, where) for side in sides
        )
        layers = []
        for layer_name in names:
            layer = meprop.get_submodule(layer_name)
            dw, dx, rows = dense_grads[layer_name]
            sdw, sdx, _ = sparse_grads[layer_name]
            probe = torch.empty((rows, layer.out_features), device=torch_device, dtype=torch_dtype)
            kernel = (fastest_kernel(method, probe) if strategy is None
                      else get_kernel(method, strategy))  # fmt: skip
            kernel.prepare()  # compile now, not inside a timed step
            layers.append(Swapped(
                layer_name, rows, layer.in_features, layer.out_features, layer.k, kernel,
                dx_in_step=dx is not None, dw_cosine=cosine(dw, sdw),
                dx_cosine=None if dx is None or sdx is None else cosine(dx, sdx)))  # fmt: skip
        del dense_grads, sparse_grads

        if block is None:  # a step of BLOCK_SECONDS or more is a block of its own
            block = 1 if first >= BLOCK_SECONDS else block_size(lambda: sides[0].step()["step"])
        peaks = [_peak_memory(side, torch_device) for side in sides]  # untimed, like warm-up
        watch = Watch()
        warm_blocks, steady, pair = _warm_up(sides, block, progress)
        auto_rounds = rounds is None
        if auto_rounds:
            rounds = clamp(ROUNDS_BUDGET_S // max(pair, 1e-9), ROUNDS_RANGE)
        progress(f"timing: {rounds} rounds of {block} steps a side (about {rounds * pair:.0f} s)")
        records: list[list[dict[str, Any]]] = [[], []]
        for r in range(rounds):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for i in order:
                records[i].append(sides[i].block(block))
        state = watch.state()
        parts = {part: {**_interval([b[part] for b in records[0]], [b[part] for b in records[1]]),
                        **_faults_record(part, records)}
                 for part in PARTS}  # fmt: skip
        for layer in layers:
            layer.fields = _interval([b["layers"][layer.name] for b in records[0]],
                                     [b["layers"][layer.name] for b in records[1]])  # fmt: skip
        isolated_rows = {}
        if isolated:
            per_round = sum(lay.fields["dense_s"] + lay.fields["meprop_s"] for lay in layers)
            iso_rounds = clamp(ISOLATED_BUDGET_S // max(per_round, 1e-9), ISOLATED_RANGE)
            progress(f"isolated: each swapped layer's backward alone, {iso_rounds} rounds")
            measured: dict[tuple, list[dict[str, Any]]] = {}  # the same shape, k and kernel once
            for layer in layers:
                shape = (layer.rows, layer.d_in, layer.n, layer.k, layer.kernel.name,
                         layer.dx_in_step)  # fmt: skip
                if shape not in measured:
                    measured[shape] = run_check(
                        batch=layer.rows, d_in=layer.d_in, n=layer.n, k=layer.k,
                        kernels=[layer.kernel.name], device=device, dtype=dtype,
                        threads=threads, rounds=iso_rounds, warmup=1, seed=seed,
                        need_dx=layer.dx_in_step, malloc=malloc,
                    )["results"]  # fmt: skip
                isolated_rows[layer.name] = measured[shape]
        machine = {**machine_info(), "state": state}

    dense_step = parts["step"]["dense_s"]
    saved = sum(lay.fields["dense_s"] * (1 - lay.k / lay.n) for lay in layers)
    step = parts["step"]
    unstable = instability(step["low"], step["high"], time_spread(step["dense_rounds_s"]))
    params = {
        "model": name, "method": method, "strategy": strategy or "auto", "k": k,
        "keep_dense": list(keep_dense), "optimizer": _optimizer_label(sides[0].optimizer),
        "threads": n_threads, "rounds": rounds, "auto_rounds": auto_rounds, "block": block,
        "warmup_blocks": warm_blocks, "steady": steady, "device": str(torch_device),
        "dtype": dtype, "seed": seed, "malloc": malloc,
        "parameters": sum(p.numel() for p in model.parameters()),
    }  # fmt: skip
    return envelope(
        MODEL,
        machine=machine,
        params=params,
        step_speedup=step["speedup"],
        step_speedup_low=step["low"],
        step_speedup_high=step["high"],
        step_bound=dense_step / (dense_step - saved) if dense_step > saved else math.inf,
        unstable=unstable,
        parts=[{"part": part, **values} for part, values in parts.items()],
        layers=[_layer_record(lay, isolated_rows.get(lay.name)) for lay in layers],
        kept_dense=kept,
        memory=_memory_record(peaks, torch_device),
    )


def _layer_record(layer: Swapped, check_rows: list[dict[str, Any]] | None) -> dict[str, Any]:
    iso: dict[str, Any] = dict.fromkeys(
        ("isolated_dense_s", "isolated_meprop_s", "isolated_speedup", "isolated_low",
         "isolated_high"))  # fmt: skip
    if check_rows:
        dense, sparse = check_rows[0], check_rows[1]
        ratios = np.asarray(dense["samples_s"]) / np.asarray(sparse["samples_s"])
        low, high = median_interval(ratios)
        iso = {"isolated_dense_s": dense["median_s"], "isolated_meprop_s": sparse["median_s"],
               "isolated_speedup": float(np.median(ratios)), "isolated_low": low,
               "isolated_high": high}  # fmt: skip
    f = layer.fields
    return {
        "name": layer.name or "(the model)", "shape": f"{layer.rows} x {layer.d_in} -> {layer.n}",
        "rows": layer.rows, "d_in": layer.d_in, "n": layer.n, "k": layer.k,
        "ideal_speedup": layer.n / layer.k, "kernel": layer.kernel.name,
        "dx_in_step": layer.dx_in_step,
        "in_step_dense_s": f["dense_s"], "in_step_meprop_s": f["meprop_s"],
        "in_step_speedup": f["speedup"], "in_step_low": f["low"], "in_step_high": f["high"],
        **iso,
        "dw_cosine": layer.dw_cosine, "dx_cosine": layer.dx_cosine,
        "dense_rounds_s": f["dense_rounds_s"], "meprop_rounds_s": f["meprop_rounds_s"],
    }  # fmt: skip


def _memory_record(
    peaks: list[tuple[int | None, int | None]], device: torch.device
) -> dict[str, Any]:
    (dense_peak, dense_start), (sparse_peak, sparse_start) = peaks
    return {
        "measure": "cuda-allocated" if device.type == "cuda" else (
            "rss" if dense_peak is not None else "unavailable"),
        "dense_peak_bytes": dense_peak,
        "meprop_peak_bytes": sparse_peak,
        "dense_step_bytes": None if dense_peak is None else dense_peak - dense_start,
        "meprop_step_bytes": None if sparse_peak is None else sparse_peak - sparse_start,
    }  # fmt: skip
