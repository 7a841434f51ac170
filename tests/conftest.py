"""Shared by the tests: tiny models (the same code as the course, at shapes that run in ms), and the grader's results
that several test files read, computed once per session."""

import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from maskgit_lab.transformer import BidirectionalTransformer, TransformerConfig
from maskgit_lab.vq import VQConfig, VQTokenizer

TINY_VQ = VQConfig(downsample=8, channels=(8, 16, 16), res_blocks=1, num_codes=16, code_dim=8)
TINY_TF = TransformerConfig(num_codes=16, num_tokens=64, dim=32, depth=2, num_heads=4, hidden_dim=64)


@pytest.fixture
def tiny_tokenizer():
    torch.manual_seed(0)
    return VQTokenizer(TINY_VQ).eval()


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return BidirectionalTransformer(TINY_TF).eval()


@pytest.fixture
def tiny_conditional():
    """A tiny class-conditional transformer (3 classes, null id 3) whose labels change its logits."""
    torch.manual_seed(0)
    model = BidirectionalTransformer(replace(TINY_TF, num_classes=3)).eval()
    torch.nn.init.normal_(model.class_emb.weight)
    return model


EARLY_RUNS = {}  # fixture name → tests/early.py's Run, started as the session begins


def early_run(name: str):
    import early

    if name not in EARLY_RUNS:
        EARLY_RUNS[name] = early.Run(name, Path(tempfile.mkdtemp(prefix=f"maskgit-early-{name}-")) / "run")
    return EARLY_RUNS[name]


def pytest_collection_finish(session):
    """Start the grading runs of tests/early.py that a selected test asks for (by fixture name), so that they run
    beside the other tests."""
    import early

    for name in sorted({name for item in session.items for name in getattr(item, "fixturenames", ()) if name in early.RUNS}):
        early_run(name)


def pytest_sessionfinish(session):
    for run in EARLY_RUNS.values():
        run.stop()
        shutil.rmtree(run.folder.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def blocked_in_c():
    """(rows by notebook, run folder) of tests/early.py's ``blocked_in_c``: a cell blocked in C past the cell timeout."""
    folder = early_run("blocked_in_c").result()
    return {r["notebook"]: r for r in json.loads((folder / "rows.json").read_text())}, folder


@pytest.fixture(scope="session")
def course(tmp_path_factory):
    """(source, class, course): the trimmed notebook 01, an example class and the course nbgrader made from it (its
    release and gradebook), made once per session (tests/submissions.py); tests copy the course before they change it."""
    from submissions import example_class, trimmed_course

    root = tmp_path_factory.mktemp("course")
    source, made = trimmed_course(root)
    example_class(root / "submissions", source, made)
    return source, root / "submissions", made


@pytest.fixture(scope="session")
def graded(course, tmp_path_factory):
    """(rows by student, out folder): the example class graded by `grade -j 2`, once per session for every test that
    reads it (tests/test_autograder_grade.py, and tests/test_slurm.py, whose merge must equal these rows)."""
    from submissions import OPTIONS

    from autograder.grader import grade

    source, submissions, made = course
    out = tmp_path_factory.mktemp("out")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MASKGIT_LAB_FAST", "1")
        rows = grade.grade(submissions, out / "grades.csv", jobs=2, source=source, template=made, **OPTIONS)
    return {r["student"]: r for r in rows}, out


@pytest.fixture(scope="session")
def judged(tmp_path_factory):
    """``judged(notebook, student)`` → (report, figures folder): the judge, feedback figure included, on the reference
    answers (student "reference") or an example submission; run once per session for all the tests that read it. As in
    a grading run, each notebook's reference figure is drawn once, into a shared folder."""
    from submissions import judge_with_figure

    from autograder import examples
    from autograder.judge import figures

    done, references = {}, tmp_path_factory.mktemp("reference-figures")

    def run(notebook: str, student: str = examples.REFERENCE) -> tuple:
        if (notebook, student) not in done:
            folder = tmp_path_factory.mktemp(f"judged-{student}")
            edits = {} if student == examples.REFERENCE else examples.BY_STUDENT[student].edits
            with pytest.MonkeyPatch.context() as patch:  # set-up cells' temporary folders and the worker stay in it
                patch.setattr(tempfile, "tempdir", str(folder))
                patch.setenv("MASKGIT_LAB_FAST", "1")
                patch.chdir(folder)
                if not (references / f"{notebook}-reference.png").is_file():
                    figures.reference_figure(notebook, references)
                done[notebook, student] = judge_with_figure(folder, notebook, edits, student, shared=references)
        return done[notebook, student]

    return run
