"""``python -m autograder merge DIR/shard-*.csv --out grades.csv [--course COURSE]``: one class from its shards.

The shards (autograder/grader/shard.py) each carry the whole cut of the class, so the merge knows
every student and which shard owes it. It checks that every student appears exactly once,
gives the students of a shard that wrote nothing (or left a student out) ``missing shard``
rows that name the shard, and writes the class CSV sorted as one ``-j 1`` run writes it, so the
two are byte-identical. Feedback folders are gathered into one ``feedback/`` beside the CSV.

With ``--course`` it then imports every graded student into the course's nbgrader gradebook
(autograder/grader/gradebook.py): the merge is the one process that writes it.

Exit status: 0 when the class is complete, 1 when a shard or student is missing (the CSV and
the gradebook still get everything that was graded), 2 when the inputs cannot be merged at all.
"""

import csv
import json
import os
import shutil
import sys
from pathlib import Path

from autograder import verdict
from autograder.core import Status
from autograder.grader import grade as grading
from autograder.grader import misconceptions
from autograder.grader.shard import MANIFEST, ShardError, bundle
from autograder.records import StudentResult


def read_shard(csv_path: Path) -> dict:
    """A shard's manifest, with its CSV rows under ``rows`` and its folder under ``bundle``."""
    csv_path = Path(csv_path)
    folder = bundle(csv_path)
    if not csv_path.is_file():
        raise ShardError(f"{csv_path}: no such file (did the shell find no shard-*.csv? check the folder)")
    if not (folder / MANIFEST).is_file():
        raise ShardError(f"{csv_path} has no {folder.name}/{MANIFEST} beside it: only CSVs written by `grade --shard` merge")
    manifest = json.loads((folder / MANIFEST).read_text())
    if any("misconceptions" not in n for s in manifest["students"].values() for n in s["notebooks"].values()):
        raise ShardError(f"{csv_path} was graded before shards carried their misconceptions: grade it again")
    with open(csv_path, newline="") as handle:
        manifest["rows"] = list(csv.DictReader(handle))
    manifest["bundle"], manifest["csv"] = folder, csv_path
    return manifest


def agree(shards: list) -> None:
    """All shards must come from one cut of one class, graded from one set of source notebooks."""
    first = shards[0]
    for other in shards[1:]:
        for key, what in (("shards", "shard count"), ("source", "source notebooks"), ("class", "class list")):
            if other[key] != first[key]:
                raise ShardError(f"{other['csv']} and {first['csv']} differ in their {what}: they come from different "
                                 f"runs. Grade the stale shard again (or leave it out) so that all come from one run.")
    seen = {}
    for shard in shards:
        if shard["shard"] in seen:
            raise ShardError(f"{shard['csv']} and {seen[shard['shard']]} are both shard {shard['shard']}/{shard['shards']}: "
                             f"give each shard once")
        seen[shard["shard"]] = shard["csv"]


def missing_rows(student: str, first: dict, reason: str) -> list:
    """The rows of a student nobody graded: one per notebook, ``missing shard``, 0 points, with ``reason``."""
    result = StudentResult(student, [verdict.unscored(n, Status.MISSING_SHARD, reason) for n in first["notebooks"]])
    return grading.csv_rows(result, Path("/nonexistent"), first["maxima"], first["hidden_max"])


def class_rows(shards: list) -> tuple:
    """(rows sorted as one run writes them, problems naming each missing shard or student)."""
    first = shards[0]
    count, cut = first["shards"], first["class"]
    present = {s["shard"]: s for s in shards}
    problems = [f"shard {i}/{count} is missing: none of the CSVs given is that shard (did its array task fail?); "
                f"grade it again with --shard {i}/{count}" for i in range(count) if i not in present]
    by_student = {}
    for shard in shards:
        for row in shard["rows"]:
            student = row["student"]
            if student not in cut:
                raise ShardError(f"{shard['csv']} has a row for {student}, who is not in the class the shards were cut from")
            if cut[student] != shard["shard"]:
                raise ShardError(f"{shard['csv']} has a row for {student}, who belongs to shard {cut[student]}/{count}")
            by_student.setdefault(student, []).append(row)
    rows = []
    for student in sorted(cut):
        index = cut[student]
        got = by_student.get(student, [])
        if index not in present:
            rows += missing_rows(student, first, f"shard {index}/{count} wrote no results: grade it again, then merge again")
        elif not got:
            problems.append(f"{student} is missing from {present[index]['csv']}")
            rows += missing_rows(student, first, f"missing from shard {index}/{count}'s CSV: grade that shard again")
        elif sorted(r["notebook"] for r in got) != first["notebooks"]:
            raise ShardError(f"{present[index]['csv']} has {len(got)} row(s) for {student}, not one per notebook: "
                             f"the file was edited or cut short; grade that shard again")
        else:
            rows += got
    return rows, problems


def gather_feedback(shards: list, feedback: Path) -> None:
    """Copy every shard's ``feedback/<student>/`` into one folder, as one run lays it out."""
    for shard in shards:
        for folder in sorted((shard["bundle"] / "feedback").glob("*")):
            target = feedback / folder.name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(folder, target)


def write_csv(rows: list, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, grading.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, out)


def merge(csv_paths: list, out: Path, feedback: Path = None, course: Path = None, log=print) -> tuple:
    """Merge the shards into ``out`` (and ``feedback``, and ``course``'s gradebook); return (rows, problems)."""
    shards = [read_shard(path) for path in csv_paths]
    agree(shards)
    rows, problems = class_rows(shards)
    out = Path(out).resolve()
    write_csv(rows, out)
    misconceptions.write({(student, notebook): named["misconceptions"] for shard in shards
                          for student, entry in shard["students"].items()
                          for notebook, named in entry["notebooks"].items()}, out.parent)
    gather_feedback(shards, Path(feedback).resolve() if feedback else out.parent / "feedback")
    students = len({r["student"] for r in rows})
    log(f"merged {len(shards)} of {shards[0]['shards']} shard(s): {students} student(s), wrote {out} ({len(rows)} rows)")
    if course:
        from autograder.grader import gradebook

        graded = {student: (shard["bundle"], entry) for shard in shards for student, entry in shard["students"].items()}
        gradebook.import_class(Path(course).resolve(), graded, shards[0]["notebooks"], log=log)
    for problem in problems:
        log(f"MISSING: {problem}")
    return rows, problems


def main(csv_paths: list, out: Path, feedback: Path = None, course: Path = None) -> int:
    """The command: 0 when complete, 1 when something is missing, 2 when the shards cannot be merged."""
    try:
        _, problems = merge(csv_paths, out, feedback, course)
    except ShardError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1 if problems else 0
