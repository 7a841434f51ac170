"""The grader's command lines: every option has a domain (autograder/options.py), and a bad value is one
line and exit 2 before any student is graded or any file written."""

import argparse
import os
from types import SimpleNamespace

import pytest

from autograder import examples, options
from autograder import slurm as slurm_module
from autograder.__main__ import main as autograder_main
from autograder.__main__ import parser as autograder_parser
from autograder.grader import grade as grading
from autograder.grader import merge, shard
from maskgit_lab import arguments
from maskgit_lab.outputs import SHIPPED_DATA

GRADE = ["grade", "{tmp}/class", "--out", "{tmp}/run/grades.csv"]
MERGE = ["merge", "{tmp}/shard-0.csv", "--out", "{tmp}/run/grades.csv"]
SLURM = ["{tmp}/class", "--shards", "2", "--dir", "{tmp}/run"]
PROC_SYS = "/proc/sys"  # refuses new files even to root, as a read-only file system does (which needs a mount to make)

BAD = [  # (command line of python -m autograder, or of python -m autograder.slurm after "slurm"), what the line says
    (GRADE + ["--timeout", "-1"], "argument --timeout: must be a finite number > 0, got '-1'"),
    (GRADE + ["--timeout", "0"], "argument --timeout: must be a finite number > 0, got '0'"),
    (GRADE + ["--timeout", "nan"], "argument --timeout: must be a finite number > 0, got 'nan'"),
    (GRADE + ["-j", "0"], "argument -j/--jobs: the value must be an integer ≥ 1, got '0'"),
    (GRADE + ["-j", "-1"], "argument -j/--jobs: the value must be an integer ≥ 1, got '-1'"),
    (GRADE + ["--memory", "-1"], "argument --memory: the value must be an integer ≥ 0, got '-1'"),
    (GRADE + ["--cell-timeout", "0"], "argument --cell-timeout: the value must be an integer ≥ 1, got '0'"),
    (["grade", "{tmp}/nowhere", "--out", "{tmp}/g.csv"],
     "argument submissions: {tmp}/nowhere is missing; give the path of an existing folder"),
    (["grade", "{tmp}/notes.txt", "--out", "{tmp}/g.csv"],
     "argument submissions: {tmp}/notes.txt is a file; give the path of an existing folder"),
    (["grade", "{tmp}/class", "--out", "{tmp}/class"],
     "argument --out: {tmp}/class is a folder; give a file name such as {tmp}/class/grades.csv"),
    (["grade", "{tmp}/class", "--out", f"{PROC_SYS}/grades.csv"],
     f"argument --out: {PROC_SYS}/grades.csv cannot be written: {PROC_SYS} is read-only (a read-only file system or no "
     f"write permission)"),
    (["grade", "{tmp}/class", "--out", "{tmp}/notes.txt/grades.csv"],
     "argument --out: {tmp}/notes.txt/grades.csv cannot be written: {tmp}/notes.txt is a file, not a folder"),
    (["grade", "{tmp}/class", "--out", "{data}/grades.csv"],
     "argument --out: {data}/grades.csv is inside the shipped data/; write it elsewhere, e.g. grades/grades.csv"),
    (GRADE + ["--feedback", "{data}/feedback"], "argument --feedback: {data}/feedback is inside the shipped data/; "
                                                "write it elsewhere, e.g. grades/feedback"),
    (GRADE + ["--feedback", "{tmp}/notes.txt"], "argument --feedback: {tmp}/notes.txt is a file; give a folder"),
    (GRADE + ["--feedback", f"{PROC_SYS}/feedback"], f"argument --feedback: {PROC_SYS}/feedback cannot be written"),
    (["grade", "{tmp}/class", "--out", "{tmp}/taken/grades.csv"],
     "the feedback folder beside --out (--feedback's default): {tmp}/taken/feedback is a file; give a folder"),
    (GRADE + ["--source", "{tmp}/nowhere"], "argument --source: {tmp}/nowhere is missing; give the path of an existing folder"),
    (GRADE + ["--source", "{tmp}/class"], "argument --source: {tmp}/class holds no notebooks (*.ipynb); give the folder of the "
                                          "source notebooks, e.g. solutions/"),
    (GRADE + ["--shard", "2/2"], "argument --shard: --shard 2/2: I counts from 0 to N-1 (like --array=0-1), N at least 1"),
    (GRADE + ["--shard", "half"], "argument --shard: --shard 'half': write I/N, e.g. --shard 0/4 for the first of four shards"),
    (MERGE[:1] + ["{tmp}/nowhere.csv"] + MERGE[2:],
     "argument SHARDS: {tmp}/nowhere.csv is missing; give the path of an existing file"),
    (MERGE[:3] + ["{tmp}/class"], "argument --out: {tmp}/class is a folder; give a file name such as {tmp}/class/grades.csv"),
    (MERGE[:3] + ["{data}/grades.csv"], "argument --out: {data}/grades.csv is inside the shipped data/"),
    (MERGE + ["--feedback", "{tmp}/notes.txt"], "argument --feedback: {tmp}/notes.txt is a file; give a folder"),
    (MERGE + ["--feedback", "{data}/feedback"], "argument --feedback: {data}/feedback is inside the shipped data/"),
    (MERGE + ["--course", "{tmp}/class"], "argument --course: {tmp}/class is not an nbgrader course (no nbgrader_config.py); "
                                          "give the course directory"),
    (MERGE + ["--course", "{tmp}/nowhere"], "argument --course: {tmp}/nowhere is missing; give the path of an existing folder"),
    (["examples", "--dest", "{data}/examples"], "argument --dest: {data}/examples is inside the shipped data/"),
    (["examples", "--dest", "{tmp}/notes.txt"], "argument --dest: {tmp}/notes.txt is a file; give a folder"),
    (["examples", "--verify", "{tmp}/nowhere.csv"],
     "argument --verify: {tmp}/nowhere.csv is missing; give the path of an existing file"),
    (["bench", "--repeats", "0"], "argument --repeats: the value must be an integer ≥ 1, got '0'"),
    (["release", "--check", "yes"], "unrecognized arguments: yes"),
    (["slurm", "{tmp}/nowhere", "--shards", "2", "--dir", "{tmp}/run"], "argument submissions: {tmp}/nowhere is missing"),
    (["slurm", "{tmp}/class", "--shards", "0", "--dir", "{tmp}/run"], "argument --shards: the value must be an integer ≥ 1, got '0'"),
    (["slurm"] + SLURM[:-1] + ["{tmp}/notes.txt"], "argument --dir: {tmp}/notes.txt is a file; give a folder"),
    (["slurm", "{tmp}/class", "--shards", "2", "--dir", "{data}/slurm"], "argument --dir: {data}/slurm is inside the shipped data/"),
    (["slurm", "{tmp}/class", "--shards", "2", "--dir", f"{PROC_SYS}/slurm"], f"argument --dir: {PROC_SYS}/slurm cannot be written"),
    (["slurm"] + SLURM + ["--out", "{data}/grades.csv"], "argument --out: {data}/grades.csv is inside the shipped data/"),
    (["slurm"] + SLURM + ["--timeout", "0"], "argument --timeout: must be a finite number > 0, got '0'"),
    (["slurm"] + SLURM + ["-j", "0"], "argument -j/--jobs: the value must be an integer ≥ 1, got '0'"),
    (["slurm"] + SLURM + ["--cpus-per-task", "0"], "argument --cpus-per-task: the value must be an integer ≥ 1, got '0'"),
    (["slurm"] + SLURM + ["--mem", "lots"], "argument --mem: must be sbatch's --mem: a whole number of MB, or with a unit"),
    (["slurm"] + SLURM + ["--time", "1:2:3:4"], "argument --time: must be sbatch's --time: minutes, MM:SS, HH:MM:SS"),
    (["slurm"] + SLURM + ["--sbatch", "partition=short"], "argument --sbatch: must be an sbatch option starting with -"),
    (["slurm"] + SLURM + ["--course", "{tmp}/class"], "argument --course: {tmp}/class is not an nbgrader course"),
]


def files_under(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture
def refusing(tmp_path, monkeypatch):
    """A class folder and a few files to point at; grading, merging, writing examples or submitting fails the test."""
    (tmp_path / "class" / "alice").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("not a folder")
    (tmp_path / "shard-0.csv").write_text("student,notebook\n")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "feedback").write_text("a file where the feedback folder would go")

    def never(*args, **kwargs):
        raise AssertionError("the command started its work instead of refusing the option")

    for module, name in ((grading, "grade"), (shard, "grade_shard"), (merge, "main"), (examples, "write"),
                         (examples, "verify"), (slurm_module, "sbatch")):
        monkeypatch.setattr(module, name, never)
    return tmp_path


def run(argv, capsys) -> tuple:
    """Exit code and stderr of python -m autograder (or, after "slurm", of python -m autograder.slurm)."""
    try:
        code = slurm_module.main(argv[1:]) if argv[0] == "slurm" else autograder_main(argv)
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_option_is_one_line_exit_2_before_any_grading(argv, message, refusing, capsys):
    fill = {"{tmp}": str(refusing), "{data}": str(SHIPPED_DATA)}
    for key, value in fill.items():
        argv, message = [a.replace(key, value) for a in argv], message.replace(key, value)
    data_before, tmp_before = files_under(SHIPPED_DATA), files_under(refusing)
    code, err = run(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err and "(see python -m autograder" in err
    assert files_under(refusing) == tmp_before and files_under(SHIPPED_DATA) == data_before


def test_a_read_only_file_system_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(arguments.os, "statvfs", lambda path: SimpleNamespace(f_flag=os.ST_RDONLY))
    with pytest.raises(argparse.ArgumentTypeError, match=f"{tmp_path} is read-only .a read-only file system"):
        options.CSV_OUT(str(tmp_path / "grades.csv"))


def every_action(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from every_action(sub)
        elif not isinstance(action, argparse._HelpAction):
            yield parser.prog, action


def test_every_option_of_the_grader_has_a_domain():
    domains = set(map(id, options.DOMAINS.values()))
    for parser in (autograder_parser(), slurm_module.parser()):
        for prog, action in every_action(parser):
            assert action.nargs == 0 or id(action.type) in domains, f"{prog} {action.option_strings or action.dest}"


def test_an_option_without_a_domain_is_refused_when_it_is_added():
    with pytest.raises(KeyError, match="option 'dream' of prog has no domain; add one to autograder.options.DOMAINS"):
        options.add(argparse.ArgumentParser(prog="prog"), "--dream")
