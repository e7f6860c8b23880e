"""selectors.read_ahead: the next item read in a second thread, on the caller's connection, on PostgreSQL."""

import threading

import pytest
from django.db import connection

from annotation.models import Dataset
from annotation.selectors.read_ahead import read_ahead

on_postgresql = connection.vendor == "postgresql"


def read_ahead_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "read-ahead"]


@pytest.mark.django_db
def test_it_reads_each_item_through_the_callers_connection_in_order():
    # Rows of the test's own transaction, not committed: only the caller's connection can see them.
    names = [f"set-{n}" for n in range(5)]
    for name in names:
        Dataset.objects.create(name=name)
    readers: list[str] = []

    def reads():
        for name in names:
            readers.append(threading.current_thread().name)
            yield Dataset.objects.get(name=name).name

    assert list(read_ahead(reads())) == names
    assert set(readers) == ({"read-ahead"} if on_postgresql else {threading.current_thread().name})
    assert not read_ahead_threads()


@pytest.mark.django_db
def test_an_error_of_the_reads_is_raised_in_the_caller_after_the_items_before_it():
    def reads():
        yield 1
        yield 2
        raise RuntimeError("connection lost at the third chunk")

    got = []
    with pytest.raises(RuntimeError, match="third chunk"):
        for item in read_ahead(reads()):
            got.append(item)
    assert got == [1, 2] and not read_ahead_threads()


@pytest.mark.django_db
def test_a_caller_that_stops_early_stops_the_reads_one_item_ahead_at_most():
    read, cleaned_up = [], []

    def reads():
        try:
            for n in range(100):
                read.append(n)
                yield n
        finally:
            cleaned_up.append(True)

    items = read_ahead(reads())
    assert [next(items), next(items)] == [0, 1]
    items.close()
    assert not read_ahead_threads() and cleaned_up == [True]
    assert len(read) <= 4  # the two taken, one waiting in the hand-over, one in the thread's hand
    # The caller's connection is still its own and usable.
    assert Dataset.objects.count() == 0
