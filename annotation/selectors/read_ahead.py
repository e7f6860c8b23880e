"""Run a generator of database reads one item ahead of its consumer, in a second thread, on PostgreSQL.

An export alternates two kinds of work: reading a chunk (PostgreSQL's CPU,
each query waited for) and writing its records (this process's CPU). Done in
turn they never overlap, and on a machine with two cores one core is always
idle. `read_ahead(items)` lets a thread take the next item from `items` (run
the next chunk's queries) while the caller works on the one it has: waiting
for PostgreSQL needs no lock of this interpreter.

The thread uses the caller's own connection (Django's are per thread), so it
reads what the caller would, in the caller's transaction; psycopg lets one
thread at a time use a connection, so a write the caller makes meanwhile (a
progress bar's row) simply waits for the query in hand. At most one item
waits in the hand-over, so memory holds two. An error raised by `items` is
raised in the caller at the item where it happened. When the caller stops
early (an error of its own, or it closes the generator), the thread stops
after the item in hand.

Elsewhere (SQLite, which reads in this process anyway) the items come
straight from `items`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, connections

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.1  # how often a blocked hand-over looks whether the caller stopped


def read_ahead(items: Iterable[T], *, using: str = DEFAULT_DB_ALIAS) -> Iterator[T]:
    """The items of `items`, each one read while the caller handles the one before (PostgreSQL only)."""
    db = connections[using]
    if db.vendor != "postgresql":
        yield from items
        return
    handover: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(entry) -> bool:
        while not stop.is_set():
            try:
                handover.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        connections[using] = db  # this thread's queries go through the caller's connection
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((_DONE, None))
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            offer((_DONE, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator stopped early runs its own cleanup here, on this connection
                close()
            del connections[using]

    db.ensure_connection()
    db.inc_thread_sharing()
    thread = threading.Thread(target=read, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = handover.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()
        db.dec_thread_sharing()
