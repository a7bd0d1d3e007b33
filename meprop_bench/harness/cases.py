"""A benchmark case: one backward kernel at one shape, dtype, device and gradient source.

The suites, the profiler, the report and the gate all name cases the same way, so a
profile can be made of exactly what a suite timed, and a sparse case can find the
dense case it is compared with (``pair_key``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from meprop_bench.core.kernels import Kernel, get_kernel
from meprop_bench.core.selection import resolve_k
from meprop_bench.errors import MePropInputError
from meprop_bench.harness.options import DTYPES

GRAD_SOURCES = ("gaussian", "recorded")


@dataclass(frozen=True)
class Case:
    """One timed backward. ``k`` is resolved to a count; dense cases carry k = n."""

    method: str
    strategy: str
    batch: int
    d_in: int
    n: int
    k: int
    dtype: str = "float32"
    device: str = "cpu"
    grads: str = "gaussian"

    @classmethod
    def make(
        cls,
        method: str,
        strategy: str | None,
        batch: int,
        d_in: int,
        n: int,
        k: int | float,
        dtype: str = "float32",
        device: str = "cpu",
        grads: str = "gaussian",
    ) -> Case:
        """Validate names and sizes and resolve ``k`` (count or fraction of n)."""
        kernel = get_kernel(method, strategy)
        if dtype not in DTYPES:
            raise MePropInputError(f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
        if grads not in GRAD_SOURCES:
            raise MePropInputError(
                f"unknown gradient source {grads!r}; choose one of: {', '.join(GRAD_SOURCES)}"
            )
        for name, value in (("batch", batch), ("d_in", d_in), ("n", n)):
            if value < 1:
                raise MePropInputError(f"{name} must be at least 1, got {value}")
        k = n if method == "dense" else resolve_k(k, n)
        return cls(kernel.method, kernel.strategy, batch, d_in, n, k, dtype, device, grads)

    @property
    def kernel(self) -> Kernel:
        return get_kernel(self.method, self.strategy)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def is_dense(self) -> bool:
        return self.method == "dense"

    def dense(self) -> Case:
        """The dense case this one is compared with: same shape, dtype, device, inputs."""
        return replace(self, method="dense", strategy="dense", k=self.n)

    @property
    def pair_key(self) -> str:
        """Shared by a case and its dense counterpart; pairs them within one run."""
        return f"B={self.batch},d_in={self.d_in},n={self.n},{self.dtype},{self.device},{self.grads}"

    @property
    def case_id(self) -> str:
        """A short, file-name-safe name, such as
        ``unified-compact_B256_d4096_n4096_k41_float32_cpu``."""
        device = self.device.replace(":", "")
        return (
            f"{self.method}-{self.strategy}_B{self.batch}_d{self.d_in}_n{self.n}_k{self.k}"
            f"_{self.dtype}_{device}" + ("" if self.grads == "gaussian" else f"_{self.grads}")
        )

    def element_size(self) -> int:
        return torch.empty((), dtype=self.torch_dtype).element_size()

    def flops(self) -> int:
        """Multiply-adds x 2 of the two products (dX and dW) over k kept columns,
        plus the bias sum; selection is not counted."""
        return 4 * self.batch * self.k * self.d_in + self.batch * self.n

    def min_bytes(self) -> int:
        """Bytes that must cross memory at least once: read dY, X and the k used rows
        of W; write dX, the k rows of dW (all n for a full-size dW) and db."""
        kernel = self.kernel
        dw_rows = self.k if kernel.compact else self.n
        elements = (
            self.batch * self.n
            + self.batch * self.d_in
            + self.k * self.d_in
            + self.batch * self.d_in
            + dw_rows * self.d_in
            + self.n
        )
        return elements * self.element_size()

    def extra_info(self, threads: int) -> dict[str, Any]:
        """What each benchmark records beside its timings (pytest-benchmark extra_info)."""
        return {
            **asdict(self),
            "B": self.batch,
            "k_over_n": self.k / self.n,
            "ideal_speedup": self.n / self.k,
            "flops": self.flops(),
            "min_bytes": self.min_bytes(),
            "threads": threads,
            "case_id": self.case_id,
            "pair_key": self.pair_key,
            "pairs_with": self.dense().case_id,
            "compact_dw": self.kernel.compact,
        }
