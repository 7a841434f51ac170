"""``python -m autograder grade SUBMISSIONS --shard I/N --out DIR/shard-I.csv``: one part of a class.

A class is cut into N shards, balanced by the notebooks each student handed in (grading time
follows the notebooks, not the names): students are taken heaviest first, each going to the
shard with the fewest notebooks so far (then the fewest students, then the lowest index). The
cut depends only on the submissions folder, so every array task computes the same one.

A shard writes only its own files: ``DIR/shard-I.csv`` (the rows ``grade`` would write for its
students) and the folder ``DIR/shard-I/`` beside it, holding ``feedback/<student>/``, each
student's autograded notebooks (``autograded/<student>/``) and ``shard.json``: the whole cut,
the maxima, and each test cell's points, which ``python -m autograder merge`` (autograder/grader/merge.py)
needs to write the class CSV and the course's gradebook. The CSV is moved into place last, so a
shard that died half-way leaves no CSV and the merge names it as missing.

Inside a SLURM array task, ``--shard`` defaults to ``SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN``
of ``SLURM_ARRAY_TASK_COUNT``.
"""

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from autograder import release
from autograder.core import Status
from autograder.grader import grade as grading
from autograder.grader import misconceptions
from autograder.records import StudentResult

MANIFEST = "shard.json"
SHARD = re.compile(r"^(\d+)/(\d+)$")


class ShardError(ValueError):
    """A shard cannot be graded or merged as asked; the message names the fix."""


def parse(text: str) -> tuple:
    """``"I/N"`` → (I, N), 0-based like SLURM array task ids."""
    match = SHARD.match(text.strip())
    if not match:
        raise ShardError(f"--shard {text!r}: write I/N, e.g. --shard 0/4 for the first of four shards")
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise ShardError(f"--shard {text}: I counts from 0 to N-1 (like --array=0-{max(count, 1) - 1}), N at least 1")
    return index, count


def from_environment(env=os.environ):
    """(I, N) of the SLURM array task this runs in, or None outside an array."""
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        return None
    index = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
    return parse(f"{index}/{env['SLURM_ARRAY_TASK_COUNT']}")


def partition(handed_in: dict, count: int) -> dict:
    """student → shard index, for ``handed_in`` (student → notebooks handed in): greedy, heaviest first."""
    loads = [(0, 0, index) for index in range(count)]  # (notebooks, students, index): min() picks the lightest
    cut = {}
    for student in sorted(handed_in, key=lambda s: (-handed_in[s], s)):
        notebooks, students, index = min(loads)
        cut[student] = index
        loads[index] = (notebooks + handed_in[student], students + 1, index)
    return cut


def bundle(csv_path: Path) -> Path:
    """The folder a shard writes beside its CSV: ``DIR/shard-I.csv`` → ``DIR/shard-I/``."""
    csv_path = Path(csv_path)
    return csv_path.with_name(csv_path.stem)


def fingerprint(source: Path) -> str:
    """Which source notebooks graded the shard: shards graded from different ones must not be merged."""
    digest = hashlib.sha256()
    for path in sorted(Path(source).glob("*.ipynb")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def cell_points(result: StudentResult, rows: list) -> dict:
    """notebook → {status, cells: test cell → points, misconceptions} for the notebooks handed in, as the CSV scored
    them (misconceptions: what autograder/grader/misconceptions.py tallies)."""
    by_notebook = {row.notebook: row for row in result.rows}
    found = {}
    for row in rows:
        if row["status"] == Status.MISSING:
            continue
        checks = by_notebook[row["notebook"]].checks
        scored = row["status"] in (Status.GRADED, Status.PENALIZED)  # tampered, timeout and error rows score 0 in every cell
        found[row["notebook"]] = {"status": row["status"],
                                  "cells": {c.cell: float(c.points) if scored else 0.0 for c in checks},
                                  "misconceptions": misconceptions.entries(by_notebook[row["notebook"]])}
    return found


def check_readable(files: dict) -> None:
    """Refuse to grade a shard whose submissions cannot be read: storage trouble, not a student's 0."""
    for student, notebooks in sorted(files.items()):
        for path in notebooks.values():
            try:
                with open(path, "rb") as handle:
                    handle.read(1)
            except OSError as err:
                raise ShardError(f"cannot read {path} ({err.strerror}): the submissions folder is damaged (a dangling "
                                 f"link, a stale network mount?). Fix it, then grade this shard again.") from err


def grade_shard(submissions: Path, out: Path, index: int, count: int, feedback: Path = None,
                source: Path = release.SOLUTIONS, log=print, **options) -> list:
    """Grade shard ``index`` of ``count``; write its CSV, feedback, autograded notebooks and manifest; return its rows."""
    from autograder.judge import hidden  # imports torch: only when grading

    submissions, out, source = Path(submissions).resolve(), Path(out).resolve(), Path(source).resolve()
    if not submissions.is_dir():
        raise ShardError(f"{submissions} is not a folder of submissions: check the path given to every array task")
    folder = bundle(out)
    for stale in (out, folder):  # a failed re-run must not leave an older shard looking finished
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    found = grading.find_submissions(submissions, source)
    cut = partition({s: len(f) for s, f in found.items()}, count)
    mine = {s for s, i in cut.items() if i == index}
    check_readable({s: found[s] for s in mine})
    log(f"shard {index}/{count}: {len(mine)} of {len(cut)} student(s), "
        f"{sum(len(found[s]) for s in mine)} notebook(s) handed in")
    autograded, students = folder / "autograded", {}

    def keep(result: StudentResult, rows: list) -> None:
        for notebook, path in sorted(result.autograded.items()):
            if Path(path).exists():
                (autograded / result.student).mkdir(parents=True, exist_ok=True)
                shutil.copy(path, autograded / result.student / f"{notebook}.ipynb")
        students[result.student] = {"seconds": round(result.seconds, 1), "notebooks": cell_points(result, rows)}

    partial = folder / "rows.csv.partial"
    rows = grading.grade(submissions, partial, feedback=feedback or folder / "feedback", source=source, log=log,
                         only=mine, on_student=keep, **options)
    notebooks = sorted(p.stem for p in source.glob("*.ipynb"))
    manifest = {"shard": index, "shards": count, "source": fingerprint(source), "notebooks": notebooks,
                "maxima": {n: list(m) for n, m in grading.max_points(source).items()},
                "hidden_max": {n: hidden.hidden_max(n) for n in notebooks}, "class": cut, "students": students}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(partial, out)
    return rows
