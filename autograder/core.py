"""The shape of every check: graded functions, their results, and how a notebook shows them."""

import contextlib
import contextvars
import dataclasses
import functools
import io
import itertools
import operator
import traceback
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Iterable, NamedTuple, Optional


class Status(str, Enum):
    """What grading made of one notebook of one student: the ``status`` column of grades.csv."""

    GRADED = "graded"  # scored; lost points are explained in the reason
    PENALIZED = "penalized"  # a TODO used the reference package: those checks score 0
    TAMPERED = "tampered"  # reached for the grader or wrote outside its folder: everything scores 0
    TIMEOUT = "timeout"  # ran past a time limit nbgrader could not interrupt
    ERROR = "error"  # unreadable, or the grader itself failed
    MISSING = "missing"  # not handed in
    MISSING_SHARD = "missing shard"  # its shard of the class wrote no results (autograder/grader/merge.py)

    def __str__(self) -> str:  # the CSV and JSON hold the bare word
        return self.value


class CheckFailed(AssertionError):
    """Raised inside a check; its text is what the student reads (expected vs got, and why)."""


@dataclass(frozen=True)
class Result:
    check: str
    points: float
    max_points: float
    message: str
    misconceptions: tuple = ()  # the names (autograder/checks/variants.py) of what a failed check recognised

    @property
    def passed(self) -> bool:
        return self.points == self.max_points

    def __str__(self) -> str:
        mark = "PASSED" if self.passed else "FAILED"
        return f"[{mark}] {self.check} ({self.points:g}/{self.max_points:g}): {self.message}"


class Variant(NamedTuple):
    """One known misconception: a short name (tests refer to it), what it computes, the words a student reads.

    ``wrong`` is what the check needs to recognise it: a value, or a function that the check
    calls on the crafted inputs it makes (``autograder.checks.variants`` holds them all).
    """

    name: str
    wrong: Any
    words: str


def diagnose(got, expected, variants: Iterable[tuple], same: Callable[[Any, Any], bool] = operator.eq) -> Optional[str]:
    """What is wrong with ``got``, in words: the one way every check names a misconception.

    ``variants`` pairs what a student with one misconception would return (a value, or a
    function of no arguments that computes it only when it is tried) with the words that name
    that misconception, as ``(wrong, words)`` or ``Variant(name, wrong, words)``. Returns None
    when ``got`` is ``expected``, the words of the first variant that ``got`` matches (a :class:`Variant`'s name is
    noted for the check's :class:`Result`, :func:`recognised`), and ""
    when it is wrong in a way no variant explains (the caller then shows expected against got).
    ``same`` compares two answers.
    """
    if same(got, expected):
        return None
    for variant in variants:
        wrong, words = variant[-2:]
        if same(got, wrong() if callable(wrong) else wrong):
            recognised([variant])
            return words
    return ""


FOUND = contextvars.ContextVar("found")  # the list a running check's recognised misconceptions go to (see score)


def recognised(variants: Iterable[tuple]) -> None:
    """Note the names of ``variants`` (those that are a :class:`Variant`) as recognised by the running check, so that
    its :class:`Result` carries them as data beside the words (nothing outside a check)."""
    found = FOUND.get(None)
    if found is not None:
        found += [v.name for v in variants if isinstance(v, Variant) and v.name not in found]


def computed(variants: Iterable[Variant], compute: Callable[[Any], Any]) -> list:
    """``variants`` made ready for :func:`diagnose`, each answering ``compute(v.wrong)`` only when it is tried."""
    return [Variant(v.name, lambda v=v: compute(v.wrong), v.words) for v in variants]


def applied(variants: Iterable[Variant], *inputs) -> list:
    """``variants`` whose ``wrong`` is a function of the check's crafted ``inputs``, made ready for :func:`diagnose`:
    each computes its answer on ``inputs`` only when it is tried."""
    return computed(variants, lambda wrong: wrong(*inputs))


def name_each(got, parts: dict, compute: Callable[[dict], Any], same: Callable[[Any, Any], bool] = operator.eq,
              most: int = 2) -> Optional[list]:
    """The words of every property ``got`` gets wrong, each named on its own: two mistakes, two messages.

    ``parts`` maps each property of the answer to ``(right, variants)``: the right way to do it and the
    :class:`Variant` ways to get it wrong (``wrong`` is the way, e.g. ``torch.ceil`` for the rounding).
    ``compute(ways)`` is what an answer doing each property the way ``ways`` (property → way) says
    computes. Tries the answer with one property wrong, then with two, up to ``most``, and returns the
    words of the wrong properties of the first that ``got`` matches; None when ``got`` is the right
    answer, [] when no such answer explains it. Each answer is computed only when it is tried.
    """
    right = {prop: way for prop, (way, _) in parts.items()}
    if same(got, compute(right)):
        return None
    for count in range(1, most + 1):
        for props in itertools.combinations(parts, count):
            for wrongs in itertools.product(*(parts[prop][1] for prop in props)):
                if same(got, compute({**right, **{prop: v.wrong for prop, v in zip(props, wrongs)}})):
                    recognised(wrongs)
                    return [v.words for v in wrongs]
    return []


def graded(points: float):
    """Turn ``check(answer, ...) -> str`` into a function returning a :class:`Result`.

    The check raises :class:`CheckFailed` with a message naming the misconception; any other
    exception from the student's code becomes a 0 with the error's last line, never a crash.
    Warnings and stderr output during the check are captured and named in the message at no
    cost: only an exception costs points (nbgrader would score a cell that writes to stderr 0).
    """

    def wrap(check: Callable[..., str]):
        @functools.wraps(check)
        def run(*args, **kwargs) -> Result:
            stderr = io.StringIO()
            with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(stderr):
                warnings.simplefilter("always")
                result = score(check, points, args, kwargs)
            said = [f"warned {w.category.__name__}: {w.message}"[:200] for w in caught[:3]]
            said += [f"wrote to stderr {stderr.getvalue().strip()[:200]!r}"] if stderr.getvalue().strip() else []
            if said:
                result = dataclasses.replace(result, message=f"{result.message} (your code {'; '.join(said)}: "
                                                             f"reported only, no points lost)")
            return result

        run.points = points
        return run

    return wrap


def score(check: Callable[..., str], points: float, args: tuple, kwargs: dict) -> Result:
    """``check(*args, **kwargs)`` as a :class:`Result` (the body of every :func:`graded` check); a failed one carries
    the names of the misconceptions it recognised (:func:`recognised`)."""
    found = []
    token = FOUND.set(found)
    try:
        message = check(*args, **kwargs)
    except CheckFailed as err:
        return Result(check.__name__, 0, points, str(err), tuple(found))
    except NotImplementedError:
        return Result(check.__name__, 0, points, "not implemented yet: finish the TODO above and run its cell again")
    except Exception as err:  # the student's code crashed: report where, do not crash the grader
        frame = traceback.extract_tb(err.__traceback__)[-1]
        where = f" (line {frame.lineno} of {frame.name})" if frame.name != "<module>" else ""
        return Result(check.__name__, 0, points, f"your code raised {type(err).__name__}: {err}{where}")
    finally:
        FOUND.reset(token)
    return Result(check.__name__, points, points, message or "all good")


def show(result: Result) -> None:
    """Print a passed ``result``; mark the cell failed when points were lost, without stopping Run All.

    In a Jupyter kernel a lost point becomes the cell's error output, published by the shell as
    an exception would be (ename ``AssertionError``, the check's message as evalue), which nbgrader
    scores 0 and its Validate lists, but the cell itself ends normally: JupyterLab's Run All
    goes on to the next cell, and the red box shows the check's line, not the grader's frames.
    Outside a kernel (plain Python, pytest) it raises the AssertionError itself.
    """
    if result.passed:
        print(result)
        return
    failure = AssertionError(result.message)
    shell = _kernel_shell()
    if shell is None:
        print(result)
        raise failure
    shell._showtraceback(AssertionError, failure, [f"{RED}{result}{RESET}"])


RED, RESET = "\x1b[1;31m", "\x1b[0m"  # how IPython colours an exception's name


def _kernel_shell():
    """The Jupyter kernel's shell when this runs in one, else None."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and hasattr(shell, "kernel") else None


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


def whose(used: Callable, answer: Callable) -> str:
    """"your" when ``used`` is the student's ``answer``, else "the reference": for lines that report a result.

    ``used`` is what :func:`use_or_reference` returned, so a line far below the fallback's notice
    still says whose function computed it.
    """
    return "your" if used is answer else "the reference"
