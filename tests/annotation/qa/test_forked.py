"""A function run in a forked child process (annotation/qa/forked.py)."""

import gc
import os
import signal

import pytest

from annotation.qa.forked import Forked, WorkerFailed, can_fork

pytestmark = pytest.mark.skipif(not can_fork(), reason="os.fork is not available here")


def test_the_child_sees_the_parents_memory_and_sends_back_its_result():
    loaded = {"records": list(range(1000))}  # nothing is sent to the child: it has its copy
    child = Forked(lambda: (os.getpid(), sum(loaded["records"]), "é" * 3))
    pid, total, text = child.result()
    assert pid != os.getpid() and total == 499500 and text == "ééé"


def test_a_large_result_comes_back_whole_while_the_parent_works():
    child = Forked(lambda: "x" * 5_000_000)  # more than a pipe holds: the child waits for the parent to read
    mine = sum(range(100_000))
    assert child.result() == "x" * 5_000_000 and mine == 4999950000


def test_an_error_in_the_child_is_raised_in_the_parent_with_its_message():
    def fail():
        raise ValueError("record 7 is broken")

    with pytest.raises(WorkerFailed, match="a worker process failed: ValueError: record 7 is broken"):
        Forked(fail).result()


def test_a_child_that_ends_without_a_result_is_a_failure_naming_how_it_ended():
    with pytest.raises(WorkerFailed, match="ended without a result \\(exit status 3\\)"):
        Forked(lambda: os._exit(3)).result()
    with pytest.raises(WorkerFailed, match=f"killed by signal {signal.SIGKILL}"):
        Forked(lambda: os.kill(os.getpid(), signal.SIGKILL)).result()


def test_a_result_that_cannot_be_pickled_is_a_failure():
    with pytest.raises(WorkerFailed, match="pickle"):
        Forked(lambda: (lambda: None)).result()


def test_a_result_is_taken_once_and_the_child_is_reaped():
    child = Forked(lambda: 1)
    assert child.result() == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(child._pid, os.WNOHANG)  # already waited for: no zombie left
    with pytest.raises(RuntimeError, match="already taken"):
        child.result()


def test_the_parents_garbage_is_not_finalized_in_the_child(tmp_path):
    log = tmp_path / "finalized.txt"

    class Noted:
        def __del__(self):
            with log.open("a") as stream:
                stream.write(f"{os.getpid()}\n")

    gc.disable()
    try:
        cycle = Noted()
        cycle.me = cycle
        del cycle  # garbage now, collected only by the collector

        def busy():
            gc.enable()
            junk = [[i] for i in range(200_000)]  # enough allocations to run the collector many times
            gc.collect()
            return len(junk)

        assert Forked(busy).result() == 200_000
        assert not log.exists()  # the child never finalized the parent's object
    finally:
        gc.enable()
    gc.collect()
    assert log.read_text() == f"{os.getpid()}\n"
