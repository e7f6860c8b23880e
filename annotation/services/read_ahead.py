"""An iterator run in a thread of its own, a few items ahead of the code that consumes it.

An import alternates two kinds of work: Python reads and checks a batch of
examples, then PostgreSQL stores it. Run one after the other, each side idles
while the other works. With the reading in a second thread, the next batch is
read and checked while the database server (a process of its own, on another
core) stores the last one; the consumer's waits on the server release the GIL.

The producer thread must not touch the database: Django's connections belong
to one thread each, and the import's transaction to the consumer's.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_ITEM, _END, _ERROR = range(3)


class ReadAhead(Generic[T]):
    """`with ReadAhead(items, depth) as ahead: for item in ahead: ...` gives the items of `items` in order.

    At most `depth` items wait in memory. An exception raised by `items` is
    raised by the consumer's loop at the same point in the sequence. Leaving
    the block early (an error in the consumer) stops the thread and waits for it.
    """

    def __init__(self, items: Iterator[T], depth: int = 2):
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="read-ahead", daemon=True)

    def __enter__(self) -> ReadAhead[T]:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put((_ITEM, item)):
                    return
            self._put((_END, None))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((_ERROR, exc))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def _put(self, entry: tuple[int, object]) -> bool:
        """Queue `entry`, waiting for room; False when the consumer has gone."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        while True:
            kind, value = self._queue.get()
            if kind == _END:
                return
            if kind == _ERROR:
                raise value
            yield value
