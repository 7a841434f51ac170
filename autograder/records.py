"""What crosses a process boundary, as typed records written to JSON files (never pickle).

* :class:`Job`: the grader → one student's process (``job.json``): the student, its files, the limits.
* :class:`Report`: the judge → the student's process (``hidden-<notebook>.json``): what every check
  computed outside the notebook.
* :class:`StudentResult`: the student's process → the grader (``result.json``): a :class:`Row` per
  notebook (status, score, reason: decided by autograder/verdict.py), the feedback files, the figures.

:func:`write` and :func:`read` are the two ends; :func:`read` builds the records back from their
field types, so a file that does not fit them fails loudly instead of giving a half-read row.
"""

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Optional

from autograder.core import Status


@dataclass(frozen=True)
class Job:
    """One student to grade, and every limit its process applies (autograder/student/limits.py sets them)."""

    student: str
    files: dict[str, str]  # notebook → the submitted file
    template: str  # the template course (source notebooks + gradebook), copied per student
    scratch: str  # the only folder the student's code may write
    source: str  # the source notebooks
    result: str  # where the student's process writes its StudentResult
    timeout: float  # wall time for the whole student, s (enforced by the grader)
    memory_mb: int  # RLIMIT_AS of the student's process and its kernels (0: none)
    cell_timeout: int  # nbgrader's Execute.timeout, and the judge's per cell and per check
    hidden_max: dict[str, float]  # notebook → the hidden checks' points
    sandbox: str = "guard"  # where the worker runs: "bwrap" or "guard" (autograder/student/sandbox.py)
    submissions: str = ""  # the class's submissions, hidden from the worker's sandbox
    figures: bool = True  # draw the feedback figures
    reference_figures: Optional[str] = None  # the reference's figures, drawn once per grading run


@dataclass
class CheckVerdict:
    """One visible check as the judge computed it on the student's function."""

    check: str
    points: float
    max_points: float
    message: str
    misconceptions: list[str] = field(default_factory=list)  # the names (checks/variants.py) the message gives


@dataclass
class HiddenVerdict:
    """One hidden check: only its points reach the student."""

    answer: str  # the student's function it was called with
    points: float
    max_points: float


@dataclass
class Figure:
    """A notebook's feedback figure: the PNGs (paths, or file names once in the feedback folder) or a note instead."""

    caption: str
    reference: Optional[str] = None
    yours: Optional[str] = None
    note: Optional[str] = None


@dataclass
class Report:
    """What leaves the judge: every verdict it computed for one notebook, or why it has none (``crash``)."""

    notebook: str = ""
    tests: dict[str, CheckVerdict] = field(default_factory=dict)  # test cell → its check's verdict
    hidden: list[HiddenVerdict] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # solution cell → "ErrorType: message" when it raised
    reference: dict[str, list[str]] = field(default_factory=dict)  # solution cell → reaches for the reference at run time
    noise: dict[str, list[str]] = field(default_factory=dict)  # test cell → what the student's code printed or warned
    figure: Optional[Figure] = None
    crash: Optional[str] = None  # the judge's own traceback, or why its report never came


@dataclass
class CellCheck:
    """One test cell as its row scores it: the smaller of nbgrader's score and the judge's."""

    cell: str
    check: str
    points: float
    max_points: float
    message: str
    misconceptions: list[str] = field(default_factory=list)  # the judge's names for the points lost, when it lost them


@dataclass
class Row:
    """One notebook's line of grades.csv; a maximum left None is the source notebook's (the grader fills it in)."""

    notebook: str
    status: Status
    reason: str
    score: float = 0.0
    max_score: Optional[float] = None
    hidden_score: float = 0.0
    hidden_max: Optional[float] = None
    manual_max: Optional[float] = None
    checks: list[CellCheck] = field(default_factory=list)


@dataclass
class StudentResult:
    """What one student's grading gave: a row per notebook, and the files the grader copies into the feedback."""

    student: str
    rows: list[Row] = field(default_factory=list)
    feedback: dict[str, str] = field(default_factory=dict)  # notebook → nbgrader's feedback HTML
    autograded: dict[str, str] = field(default_factory=dict)  # notebook → the autograded notebook
    figures: dict[str, Figure] = field(default_factory=dict)
    sandbox: str = ""
    crash: Optional[str] = None  # the student's process failed: its traceback
    seconds: float = 0.0  # measured by the grader


def write(record, path: Path) -> None:
    Path(path).write_text(json.dumps(dataclasses.asdict(record), indent=1))


def read(kind: type, path: Path):
    """The record of type ``kind`` in the JSON file ``path``."""
    return from_plain(kind, json.loads(Path(path).read_text()))


def from_plain(kind, value):
    """``value`` (parsed JSON) as ``kind``: a record, ``list[X]``, ``dict[str, X]``, ``Optional[X]``, an enum, a float."""
    if value is None:
        return None
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Union:  # Optional[X]
        return from_plain(next(a for a in args if a is not type(None)), value)
    if origin is list:
        return [from_plain(args[0], item) for item in value]
    if origin is dict:
        return {key: from_plain(args[1], item) for key, item in value.items()}
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        unknown = set(value) - set(hints)
        if unknown:
            raise ValueError(f"{kind.__name__} has no field(s) {', '.join(sorted(unknown))}")
        return kind(**{name: from_plain(hints[name], item) for name, item in value.items()})
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    return float(value) if kind is float else value
