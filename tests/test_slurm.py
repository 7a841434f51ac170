"""Grading a class as a real SLURM job array: `python -m autograder.slurm`, on a single-node SLURM.

tests/slurm_node.py starts slurmctld, slurmd (and munged when none runs) for this module and
stops them at its end, also when a test fails. The class is four example submissions of the
trimmed notebook 01 (a correct one, stderr in a graded cell, a deleted test cell, a file that
is not a notebook), so that two busy cores grade it in a few minutes. The array grades it: its
task 1 fails on a damaged folder, reports at once and is graded again with the command of its
report. The merge must equal these students' rows in the class that tests/conftest.py grades
once per session with `grade -j 2` (``graded``). Without SLURM the module skips with one line
saying what to install.
"""

import csv
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import slurm_node
from submissions import NB01

from autograder import release
from autograder.grader import shard
from autograder.slurm import FAILURES

pytestmark = pytest.mark.slurm
STUDENTS = ["reference", "stderr", "deleted_test_cell"]  # of the session's class, with "broken"
OPTIONS = ["--timeout", "900", "--memory", "5120", "--cell-timeout", "300"]  # as safe as the defaults on a loaded machine
JOB = re.compile(r"^(array|merge) job (\d+)", re.M)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    why = slurm_node.unavailable()
    if why:
        pytest.skip(f"no SLURM: {why}")
    with slurm_node.SlurmNode(tmp_path_factory.mktemp("slurm")) as running:
        yield running


def submit(node, submissions, folder, course_dir, source) -> dict:
    """Run the instructor's wrapper; return {"array": id, "merge": id} from what it printed."""
    done = subprocess.run([sys.executable, "-m", "autograder.slurm", str(submissions), "--shards", "2", "--dir", str(folder),
                           "--course", str(course_dir), "--source", str(source), *OPTIONS, "--cpus-per-task", "1", "--mem", "1024"],
                          env=node.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    jobs = dict(JOB.findall(done.stdout))
    assert set(jobs) == {"array", "merge"}, done.stdout
    return jobs


def totals(path) -> dict:
    """student → total visible score, from a class CSV."""
    found = {}
    with open(path) as handle:
        for row in csv.DictReader(handle):
            found[row["student"]] = found.get(row["student"], 0.0) + float(row["score"])
    return found


def reported_commands(report) -> dict:
    """The report's "re-grade:" and "then:" lines → their shell commands."""
    lines = [line.strip().split(":", 1) for line in report.read_text().splitlines() if line.startswith("  ")]
    return {key.strip(): value.strip() for key, value in lines}


def shell(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=1800)


def test_a_failed_shard_is_reported_at_once_and_its_regrade_merges_into_the_class_rows_and_gradebook(node, course, graded,
                                                                                                    tmp_path):
    source, submissions, made = course
    broken_class, run, course_dir = tmp_path / "submissions", tmp_path / "run", tmp_path / "course"
    for student in STUDENTS + ["broken"]:
        shutil.copytree(submissions / student, broken_class / student)
    cut = shard.partition({s: 1 for s in STUDENTS + ["broken"]}, 2)
    lost = sorted(s for s, i in cut.items() if i == 1)
    damaged = broken_class / lost[0] / f"{NB01}.ipynb"
    damaged.unlink()
    os.symlink(tmp_path / "gone" / f"{NB01}.ipynb", damaged)  # a dangling link: the folder is damaged
    shutil.copytree(made, course_dir)
    started = time.monotonic()
    jobs = submit(node, broken_class, run, course_dir, source)
    report = run / FAILURES
    slurm_node.wait_for("the failed task's report", report.exists, timeout=1200)
    seen = time.time()
    states = node.wait_jobs([jobs["array"], jobs["merge"]], timeout=1200)
    print(f"array + merge finished {time.monotonic() - started:.0f} s after submission")
    logs = {p.name: p.read_text() for p in (run / "logs").glob("*.out")}
    assert states[jobs["array"]] == {"0": "COMPLETED", "1": "FAILED"}, logs
    assert states[jobs["merge"]] == {jobs["merge"]: "CANCELLED"}, logs  # afterok: SLURM never runs it
    tasks = node.job_records(jobs["array"])
    failed, other = slurm_node.epoch(tasks["1"]["EndTime"]), slurm_node.epoch(tasks["0"]["EndTime"])
    print(f"failure → report: written {report.stat().st_mtime - failed:+.1f} s from the failed task's end, "
          f"seen here {seen - failed:+.1f} s; the other task ended {other - failed:.0f} s after the failure")
    assert report.stat().st_mtime <= failed + 1 < other  # at once, not when the whole array has ended
    assert seen - failed < 60
    log = f"grade-{jobs['array']}_1.out"
    assert "cannot read" in logs[log] and f"reported in {report}" in logs[log]
    assert f"shard 1/2 (array task {jobs['array']}_1) failed with exit code 2" in report.read_text()
    commands = reported_commands(report)
    assert commands["log"] == str(run / "logs" / log)
    assert not (run / "shard-1.csv").exists()

    merging = shell(commands["then"])  # before the re-grade: the missing shard is named, the class kept whole
    assert merging.returncode == 1, merging.stderr
    assert "MISSING: shard 1/2 is missing" in merging.stdout
    with open(run / "grades.csv") as handle:
        rows = {r["student"]: r for r in csv.DictReader(handle)}
    assert sorted(rows) == sorted(cut)
    assert [s for s in sorted(rows) if rows[s]["status"] == "missing shard"] == lost
    assert all("shard 1/2 wrote no results" in rows[s]["reason"] for s in lost)

    damaged.unlink()  # the instructor mends the folder, then runs the report's two commands
    shutil.copy(submissions / lost[0] / f"{NB01}.ipynb", damaged)
    regraded = shell(commands["re-grade"])
    assert regraded.returncode == 0, regraded.stderr[-3000:]
    merging = shell(commands["then"])
    assert merging.returncode == 0, merging.stdout + merging.stderr
    merged = run / "grades.csv"
    with open(merged) as handle:
        assert list(csv.DictReader(handle)) == [graded[0][s] for s in sorted(STUDENTS + ["broken"])]
    assert sorted(p.name for p in (run / "feedback").iterdir()) == sorted(STUDENTS + ["broken"])

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}", "maskgit-lab") as gb:
        recorded = {s.id: sum(g.auto_score or 0 for sub in s.submissions for nb in sub.notebooks for g in nb.grades)
                    for s in gb.students}
        graded_notebooks = {s.id: [nb.name for sub in s.submissions for nb in sub.notebooks] for s in gb.students}
    assert recorded == totals(merged)
    assert graded_notebooks == {s: [NB01] for s in STUDENTS + ["broken"]}
    for student in STUDENTS:
        assert (course_dir / "autograded" / student / release.ASSIGNMENT / f"{NB01}.ipynb").exists()
    release.run_nbgrader(course_dir, "export", "--to", str(tmp_path / "export.csv"))
    with open(tmp_path / "export.csv") as handle:
        exported = {r["student_id"]: float(r["score"]) for r in csv.DictReader(handle)}
    assert exported == totals(merged)
