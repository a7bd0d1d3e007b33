"""The exception a user's mistake raises, so command-line entry points can report it
as a clear message and a non-zero exit instead of a traceback; and how to tell the
backend's "not implemented for this dtype or device" from a bug."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class MePropInputError(ValueError):
    """Bad input from the user: an out-of-range k, mismatched shapes, an unknown name."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what SLURM and CI send on cancel), raised where it is taken like Ctrl-C,
    so the same clean-up runs; the command then exits 143, as a SIGTERM'd process does."""


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside, SIGTERM raises :class:`Terminated`, a KeyboardInterrupt, so the clean-up
    Ctrl-C runs (workers stopped, temporary trees removed, finished work kept) runs on
    a cancel too, where the default action would kill this process alone. Only the main
    thread can take signals: elsewhere it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def backend_unsupported(err: BaseException) -> str | None:
    """The backend's reason when ``err`` says it has no implementation for the dtype or
    device asked for (a NotImplementedError, or a RuntimeError "... not implemented for
    'Half'"), which the user's choice of case caused; None for any other error, a bug
    that must surface as itself."""
    text = str(err).strip()
    if isinstance(err, NotImplementedError) or (
        isinstance(err, RuntimeError) and "not implemented for" in text
    ):
        return text.splitlines()[0] if text else type(err).__name__
    return None


@contextmanager
def backend_support(what: str) -> Iterator[None]:
    """Inside, an error of :func:`backend_unsupported` becomes a MePropInputError saying
    that ``what`` (e.g. "topk/sparse in bfloat16 on cpu") cannot run here, and why."""
    try:
        yield
    except RuntimeError as err:
        reason = backend_unsupported(err)
        if reason is None:
            raise
        raise MePropInputError(f"{what}: {reason}") from None
