"""browser_lab's waits: one that follows progress fails only after a stretch with none, however long the work.

A page without a browser stands in for a notebook whose kernel works for a while and then stops.
"""

import time

import pytest
from browser_lab import Page

pytestmark = pytest.mark.browser


class Working(Page):
    """A page whose progress moves every 0.1 s for ``seconds``, then stands still."""

    def __init__(self, seconds: float):
        self.start, self.seconds = time.monotonic(), seconds

    def focus(self):
        pass

    def progress(self) -> int:
        return int(min(time.monotonic() - self.start, self.seconds) * 10)


def test_a_wait_that_follows_progress_outlasts_its_timeout_while_the_work_goes_on():
    page = Working(seconds=3.0)
    done = page.start + 1.5  # well past the 0.5 s timeout
    assert page.wait(lambda: time.monotonic() > done, 0.5, "the work did not finish", follow_progress=True)


def test_a_wait_that_follows_progress_fails_once_nothing_moves():
    page = Working(seconds=0.0)
    with pytest.raises(AssertionError, match=r"^stuck \(nothing progressed for 0\.5 s\)$"):
        page.wait(lambda: False, 0.5, "stuck", follow_progress=True)


def test_a_plain_wait_stops_at_its_timeout_whatever_moves():
    page = Working(seconds=60.0)
    with pytest.raises(AssertionError, match=r"^too slow \(waited 0\.5 s\)$"):
        page.wait(lambda: False, 0.5, "too slow")
