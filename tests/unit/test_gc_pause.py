"""The collector pause around a batch: shared by writer threads, and it leaves the collector as
the process had it (a writer must never turn collection off for good)."""

from __future__ import annotations

import gc
import threading

from ledger import gc_pause


def test_the_collector_runs_again_when_the_last_writer_ends_its_batch() -> None:
    assert gc.isenabled()
    inside = threading.Event()
    release = threading.Event()

    def other_writer() -> None:
        with gc_pause.paused():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other_writer)
    with gc_pause.paused():
        assert not gc.isenabled()
        thread.start()
        assert inside.wait(10)
    assert not gc.isenabled(), "another writer is still inside its batch"
    release.set()
    thread.join(10)
    assert gc.isenabled()


def test_a_collector_the_process_turned_off_stays_off() -> None:
    gc.disable()
    try:
        with gc_pause.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_error_in_the_batch_still_resumes_the_collector() -> None:
    try:
        with gc_pause.paused():
            raise RuntimeError("the batch failed")
    except RuntimeError:
        pass
    assert gc.isenabled()
