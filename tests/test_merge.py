"""`python -m autograder merge`: the class CSV from shards, and the one writer of the course's gradebook.

The shards here are written by hand in the layout `grade --shard` writes (autograder/grader/shard.py),
with known points per test cell, so each test runs in seconds; tests/test_slurm.py merges real
shards graded by a real SLURM array. The course is a real nbgrader course (a trimmed notebook
01, `nbgrader generate_assignment`, made once per session: tests/conftest.py), read back through
nbgrader's API and `nbgrader export`.
"""

import csv
import json
import shutil
import subprocess
import sys

import pytest
from submissions import NB01

from autograder import release
from autograder.core import Status
from autograder.grader import grade, gradebook, merge, misconceptions, shard
from autograder.records import Row, StudentResult

TESTS = {"01_check_nearest_code": 2.0, "01_check_straight_through": 2.0, "01_check_vq_losses": 3.0}
# student → points per test cell (None: the notebook was not handed in)
POINTS = {"ada": {"01_check_nearest_code": 2.0, "01_check_straight_through": 2.0, "01_check_vq_losses": 3.0},
          "bo": {"01_check_nearest_code": 0.0, "01_check_straight_through": 2.0, "01_check_vq_losses": 3.0},
          "cy": {"01_check_nearest_code": 2.0, "01_check_straight_through": 0.0, "01_check_vq_losses": 0.0},
          "di": None, "ed": {"01_check_nearest_code": 0.0, "01_check_straight_through": 0.0, "01_check_vq_losses": 3.0}}
# student → (check, misconception) its shard.json names for the points it lost
NAMED = {"bo": [("check_nearest_code", "dot product")],
         "ed": [("check_nearest_code", "dot product"), ("check_straight_through", "gradient stops at the codebook")]}


@pytest.fixture
def template(course):
    """(source, course) of the session's one-notebook course with its gradebook: copied into each test's course."""
    source, _, made = course
    return source, made


def write_shards(folder, source, course, count: int, points=POINTS) -> list:
    """Shards in `grade --shard`'s layout for ``points``; returns their CSV paths."""
    cut = shard.partition({s: int(p is not None) for s, p in points.items()}, count)
    maxima = grade.max_points(source)
    released = course / "release" / release.ASSIGNMENT / f"{NB01}.ipynb"
    paths = []
    for index in range(count):
        rows, students = [], {}
        bundle = folder / f"shard-{index}"
        for student in sorted(s for s in cut if cut[s] == index):
            cells = points[student]
            row = Row(NB01, Status.MISSING, "not submitted")
            if cells is not None:
                row = Row(NB01, Status.GRADED, "all checks passed", score=float(sum(cells.values())))
                (bundle / "autograded" / student).mkdir(parents=True)
                shutil.copy(released, bundle / "autograded" / student / f"{NB01}.ipynb")
                (bundle / "feedback" / student).mkdir(parents=True)
                (bundle / "feedback" / student / "summary.md").write_text(f"# {student}\n")
            rows += grade.csv_rows(StudentResult(student, [row]), folder, maxima, {NB01: 2.0})
            named = [{"name": name, "check": check, "message": f"{check} failed"} for check, name in NAMED.get(student, [])]
            students[student] = {"seconds": 1.0, "notebooks": {} if cells is None else {
                NB01: {"status": "graded", "cells": cells, "misconceptions": named}}}
        bundle.mkdir(parents=True, exist_ok=True)
        manifest = {"shard": index, "shards": count, "source": shard.fingerprint(source), "notebooks": [NB01],
                    "maxima": {n: list(m) for n, m in maxima.items()}, "hidden_max": {NB01: 2.0}, "class": cut, "students": students}
        (bundle / shard.MANIFEST).write_text(json.dumps(manifest))
        with open(folder / f"shard-{index}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, grade.COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        paths.append(folder / f"shard-{index}.csv")
    return paths


@pytest.fixture
def setup(template, tmp_path):
    source, made = template
    course = tmp_path / "course"
    shutil.copytree(made, course)
    return source, course, write_shards(tmp_path / "shards", source, made, 2)


def gradebook_scores(course) -> dict:
    """(student, grade id) → (auto_score, manual_score, needs_manual_grade), and the submission count, via nbgrader's API."""
    from nbgrader.api import Gradebook

    found, submissions = {}, 0
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "maskgit-lab") as gb:
        for student in gb.students:
            for submission in student.submissions:
                submissions += 1
                for notebook in submission.notebooks:
                    for g in notebook.grades:
                        found[(student.id, g.name)] = (g.auto_score, g.manual_score, g.needs_manual_grade)
    return found, submissions


def expected_scores() -> dict:
    found = {}
    for student, cells in POINTS.items():
        for gid in TESTS:
            found[(student, gid)] = (None if cells is None else cells[gid], None, False)
        found[(student, "01_a_beta")] = (None, None, cells is not None)  # a question still to grade by hand
    return found


def test_the_merge_writes_every_student_once_sorted_and_fills_the_gradebook(setup, tmp_path):
    source, course, paths = setup
    rows, problems = merge.merge(paths, tmp_path / "grades.csv", course=course, log=lambda _: None)
    assert problems == []
    with open(tmp_path / "grades.csv", newline="") as handle:
        read = list(csv.DictReader(handle))
    assert [r["student"] for r in read] == sorted(POINTS) and read == rows
    assert {r["student"]: r["score"] for r in read} == {s: "0" if p is None else f"{sum(p.values()):g}" for s, p in POINTS.items()}
    assert sorted(p.name for p in (tmp_path / "feedback").iterdir()) == sorted(s for s, p in POINTS.items() if p)
    assert gradebook_scores(course) == (expected_scores(), len(POINTS))
    for student, cells in POINTS.items():
        assert (course / "autograded" / student / release.ASSIGNMENT / f"{NB01}.ipynb").exists() == (cells is not None)


def test_nbgrader_export_lists_every_student_with_the_csv_totals(setup, tmp_path):
    source, course, paths = setup
    merge.merge(paths, tmp_path / "grades.csv", course=course, log=lambda _: None)
    release.run_nbgrader(course, "export", "--to", str(tmp_path / "export.csv"))
    with open(tmp_path / "export.csv") as handle:
        exported = {r["student_id"]: (float(r["score"]), float(r["max_score"])) for r in csv.DictReader(handle)}
    assert exported == {s: (sum(p.values()) if p else 0.0, 7.0 + 2.0) for s, p in POINTS.items()}


def test_a_rerun_replaces_scores_never_duplicates_and_keeps_manual_grades(setup, tmp_path, template):
    source, course, paths = setup
    merge.merge(paths, tmp_path / "grades.csv", course=course, log=lambda _: None)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "maskgit-lab") as gb:
        gb.find_grade("01_a_beta", NB01, release.ASSIGNMENT, "ada").manual_score = 1.5  # graded by hand in formgrader
        gb.db.commit()
    regraded = dict(POINTS, bo=dict(POINTS["ada"]))  # bo's shard is graded again and now passes
    paths = write_shards(tmp_path / "again", source, template[1], 2, regraded)
    merge.merge(paths, tmp_path / "grades.csv", course=course, log=lambda _: None)
    scores, submissions = gradebook_scores(course)
    assert submissions == len(POINTS)
    assert scores[("bo", "01_check_nearest_code")] == (2.0, None, False)
    assert scores[("ada", "01_a_beta")] == (None, 1.5, True)


def test_a_merge_interrupted_half_way_and_run_again_gives_the_same_gradebook(setup, tmp_path, monkeypatch, template):
    source, course, paths = setup
    clean = tmp_path / "clean"
    shutil.copytree(template[1], clean)
    merge.merge(paths, tmp_path / "clean.csv", course=clean, log=lambda _: None)
    real, calls = gradebook.import_student, []

    def dies_on_the_third(*args):
        calls.append(args[2])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(gradebook, "import_student", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        merge.merge(paths, tmp_path / "grades.csv", course=course, log=lambda _: None)
    assert gradebook_scores(course)[1] == 2  # two whole students, nothing of the third
    monkeypatch.setattr(gradebook, "import_student", real)
    merge.merge(paths, tmp_path / "grades.csv", course=course, log=lambda _: None)
    assert gradebook_scores(course) == gradebook_scores(clean)
    assert (tmp_path / "grades.csv").read_bytes() == (tmp_path / "clean.csv").read_bytes()


def test_a_missing_shard_is_named_in_the_output_and_in_its_students_rows(setup, tmp_path, capsys):
    source, course, paths = setup
    cut = json.loads((paths[0].with_suffix("") / shard.MANIFEST).read_text())["class"]
    code = merge.main([paths[0]], tmp_path / "grades.csv", course=course)
    assert code == 1
    assert "MISSING: shard 1/2 is missing" in capsys.readouterr().out
    with open(tmp_path / "grades.csv") as handle:
        rows = {r["student"]: r for r in csv.DictReader(handle)}
    assert sorted(rows) == sorted(POINTS)  # never a short class list
    lost = sorted(s for s, i in cut.items() if i == 1)
    assert lost and all(rows[s]["status"] == Status.MISSING_SHARD and "shard 1/2" in rows[s]["reason"] for s in lost)
    assert all(rows[s]["status"] != Status.MISSING_SHARD for s in cut if cut[s] == 0)
    assert {s for s, _ in gradebook_scores(course)[0]} == {s for s in cut if cut[s] == 0}


def test_a_student_cut_from_its_shard_csv_is_named(setup, tmp_path, capsys):
    source, course, paths = setup
    lines = paths[1].read_text().splitlines(keepends=True)
    paths[1].write_text("".join(lines[:-1]))
    student = lines[-1].split(",")[0]
    assert merge.main(paths, tmp_path / "grades.csv") == 1
    assert f"MISSING: {student} is missing from {paths[1]}" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, message", [
    ("twice", "are both shard 0/2"),
    ("other run", "differ in their class list"),
    ("no manifest", "only CSVs written by `grade --shard` merge"),
    ("no file", "no such file"),
    ("older grader", "before shards carried their misconceptions"),
])
def test_shards_that_cannot_be_merged_are_refused_with_the_fix(setup, tmp_path, mistake, message, capsys, template):
    source, course, paths = setup
    if mistake == "twice":
        paths = [paths[0], paths[0]]
    elif mistake == "other run":
        paths = [paths[0], write_shards(tmp_path / "other", source, template[1], 2, dict(POINTS, fy=None))[1]]
    elif mistake == "no manifest":
        (paths[1].with_suffix("") / shard.MANIFEST).unlink()
    elif mistake == "older grader":
        manifest = json.loads((paths[1].with_suffix("") / shard.MANIFEST).read_text())
        for entry in manifest["students"].values():
            for notebook in entry["notebooks"].values():
                del notebook["misconceptions"]
        (paths[1].with_suffix("") / shard.MANIFEST).write_text(json.dumps(manifest))
    else:
        paths = [tmp_path / "shards" / "shard-*.csv"]
    assert merge.main(paths, tmp_path / "grades.csv") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "grades.csv").exists()


def test_the_merge_tallies_the_misconceptions_the_shards_carry(setup, tmp_path):
    _, _, paths = setup
    merge.merge(paths, tmp_path / "grades.csv", log=lambda _: None)
    page = tmp_path / misconceptions.REPORT
    assert misconceptions.read(page) == {(NB01, "dot product"): ["bo", "ed"], (NB01, "gradient stops at the codebook"): ["ed"]}
    assert f"| 2 of 4 | {NB01} | dot product | check_nearest_code |" in page.read_text()  # di handed nothing in
    assert (tmp_path / misconceptions.CHART).is_file()


def test_the_gradebook_has_one_writer_at_a_time(setup, tmp_path):
    source, course, paths = setup
    with gradebook.one_writer(course), pytest.raises(shard.ShardError, match="another merge is writing"):
        merge.merge(paths, tmp_path / "grades.csv", course=course, log=lambda _: None)


def test_a_course_without_the_assignment_is_refused(setup, tmp_path):
    source, course, paths = setup
    (course / "gradebook.db").unlink()
    with pytest.raises(shard.ShardError, match="nbgrader generate_assignment maskgit"):
        merge.merge(paths, tmp_path / "grades.csv", course=course, log=lambda _: None)


def test_the_command_line_merges(setup, tmp_path):
    source, course, paths = setup
    done = subprocess.run([sys.executable, "-m", "autograder", "merge", *map(str, paths), "--out", str(tmp_path / "g.csv"),
                           "--course", str(course)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"merged 2 of 2 shard(s): {len(POINTS)} student(s)" in done.stdout and "gradebook: 5 student(s) imported" in done.stdout
