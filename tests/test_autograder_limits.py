"""Every limit in one place (autograder/student/limits.py): the memory cap and the deadline."""

import signal
import subprocess
import sys
import time

import pytest

from autograder.student.limits import CellTimeoutError, deadline, judge_seconds


def run_python(code: str, tmp_path):
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_the_memory_cap_turns_a_huge_allocation_into_an_error(tmp_path):
    code = """
from autograder.student.limits import cap_memory
cap_memory(2048)
try:
    block = bytearray(4 * 2**30)
    print('allocated')
except MemoryError:
    print('MemoryError')
"""
    assert run_python(code, tmp_path).stdout.strip() == "MemoryError"


def test_a_cap_above_what_is_held_allows_that_much_more_and_cannot_be_raised_again(tmp_path):
    code = """
import resource
from autograder.student.limits import cap_memory, held_bytes
held = held_bytes()
cap_memory(256, above_held=True)
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
small = bytearray(64 * 2**20)
try:
    bytearray(512 * 2**20)
    print('allocated')
except MemoryError:
    print('MemoryError')
cap_memory(8192)  # never above the cap already set
print(soft == hard, 0 <= soft - held - 256 * 2**20 < 16 * 2**20, resource.getrlimit(resource.RLIMIT_AS) == (soft, hard))
"""
    assert run_python(code, tmp_path).stdout.split() == ["MemoryError", "True", "True", "True"]


def test_the_deadline_raises_on_time_and_leaves_no_timer_behind():
    started = time.monotonic()
    with pytest.raises(CellTimeoutError):
        with deadline(0.2):
            time.sleep(5)
    assert 0.15 < time.monotonic() - started < 2
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with deadline(5):
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with deadline(0):  # no limit
        time.sleep(0.05)


def test_a_deadline_inside_another_restores_the_outer_timer_and_handler():
    def mine(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, mine)
    try:
        with deadline(10):
            with deadline(0.1):
                remaining, _ = signal.getitimer(signal.ITIMER_REAL)
                assert remaining <= 0.1
            remaining, _ = signal.getitimer(signal.ITIMER_REAL)
            assert 9 < remaining <= 10  # the outer timer runs on
        assert signal.getsignal(signal.SIGALRM) is mine
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        started = time.monotonic()
        with pytest.raises(CellTimeoutError):
            with deadline(0.2):
                with deadline(60):  # the sooner outer deadline still holds inside a longer one
                    time.sleep(5)
        assert time.monotonic() - started < 2
        assert signal.getsignal(signal.SIGALRM) is mine
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGALRM, old)


def test_the_judge_has_time_for_every_cell_and_check():
    assert judge_seconds(0) == judge_seconds(10) == 120
    assert judge_seconds(600) == 2400
