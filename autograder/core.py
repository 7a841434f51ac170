"""The shape of every check: graded functions, their results, and how a notebook shows them."""

import functools
import traceback
from dataclasses import dataclass
from typing import Callable


class CheckFailed(AssertionError):
    """Raised inside a check; its text is what the student reads (expected vs got, and why)."""


@dataclass(frozen=True)
class Result:
    check: str
    points: float
    max_points: float
    message: str

    @property
    def passed(self) -> bool:
        return self.points == self.max_points

    def __str__(self) -> str:
        mark = "PASSED" if self.passed else "FAILED"
        return f"[{mark}] {self.check} ({self.points:g}/{self.max_points:g}): {self.message}"


def graded(points: float):
    """Turn ``check(answer, ...) -> str`` into a function returning a :class:`Result`.

    The check raises :class:`CheckFailed` with a message naming the misconception; any other
    exception from the student's code becomes a 0 with the error's last line, never a crash.
    """

    def wrap(check: Callable[..., str]):
        @functools.wraps(check)
        def run(*args, **kwargs) -> Result:
            try:
                message = check(*args, **kwargs)
            except CheckFailed as err:
                return Result(check.__name__, 0, points, str(err))
            except NotImplementedError:
                return Result(check.__name__, 0, points, "not implemented yet: finish the TODO above and run its cell again")
            except Exception as err:  # the student's code crashed: report where, do not crash the grader
                frame = traceback.extract_tb(err.__traceback__)[-1]
                where = f" (line {frame.lineno} of {frame.name})" if frame.name != "<module>" else ""
                return Result(check.__name__, 0, points, f"your code raised {type(err).__name__}: {err}{where}")
            return Result(check.__name__, points, points, message or "all good")

        run.points = points
        return run

    return wrap


def show(result: Result) -> None:
    """Print ``result``; fail (AssertionError) when points were lost, so the test cell scores 0."""
    print(result)
    if not result.passed:
        raise AssertionError(result.message)


def use_or_reference(answer: Callable, reference: Callable, check: Callable) -> Callable:
    """The student's ``answer`` if ``check(answer)`` passes, else the reference implementation.

    Later sections of a notebook call this, so one unfinished TODO does not block the rest.
    """
    result = check(answer)
    if result.passed:
        return answer
    print(f"Using the reference {reference.__module__}.{reference.__name__} below, "
          f"because {result.check} did not pass yet: {result.message}")
    return reference
