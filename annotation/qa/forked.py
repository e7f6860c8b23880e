"""Run a function in a forked child process and take back its result. Pure: no Django.

`Forked(func)` forks at once; the child runs `func()` on its copy of the
parent's memory (nothing is sent to it, so it may use anything the parent
had loaded: records, a sentence splitter) and sends back the pickled return
value through a pipe; `result()` waits for it. The parent goes on with its
own work meanwhile, so two parts of one job run on two cores.

The child leaves with `os._exit`: it never returns into the parent's code,
flushes none of the parent's buffers and closes none of its connections
(a database connection closed by a child would be closed for the parent).
So `func` must not write to files or connections it shares with the parent.

Only where `os.fork` exists (not Windows), and only from a process with no
other threads that `func` could depend on: a lock another thread holds at
the fork stays held in the child. `can_fork()` says whether it is available.
"""

from __future__ import annotations

import gc
import os
import pickle
import traceback
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class WorkerFailed(RuntimeError):
    """The child process raised, or ended without a result (killed, out of memory)."""


def can_fork() -> bool:
    return hasattr(os, "fork")


class Forked(Generic[T]):
    """`func()` running in a forked child; `result()` is its return value, or raises WorkerFailed."""

    def __init__(self, func: Callable[[], T]) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                os.close(read_fd)
                # What the parent had is never collected here: no finalizer of its objects runs in the child
                # (one could write to a file or socket they share), and the collector leaves their pages shared.
                gc.freeze()
                try:
                    payload = pickle.dumps((True, func()), protocol=pickle.HIGHEST_PROTOCOL)
                except BaseException as exc:  # noqa: BLE001 - told to the parent, which raises
                    described = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                    payload = pickle.dumps((False, described), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(write_fd, "wb") as stream:
                    stream.write(payload)
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        self._pid = pid
        self._read_fd: int | None = read_fd

    def result(self) -> T:
        """Wait for the child; its return value. Call it once."""
        if self._read_fd is None:
            raise RuntimeError("result() was already taken")
        try:
            with os.fdopen(self._read_fd, "rb") as stream:
                payload = stream.read()  # until the child has written everything and closed its end
        finally:
            self._read_fd = None
            _, status = os.waitpid(self._pid, 0)
        if not payload:
            raise WorkerFailed(f"a worker process ended without a result ({_describe(status)})")
        ok, value = pickle.loads(payload)
        if not ok:
            raise WorkerFailed(f"a worker process failed: {value}")
        return value


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"
