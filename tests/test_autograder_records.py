"""What crosses a process boundary (autograder/records.py): typed records, through JSON and back unchanged."""

import json

import pytest

from autograder import records
from autograder.core import Status
from autograder.records import CellCheck, CheckVerdict, Figure, HiddenVerdict, Job, Report, Row, StudentResult


def test_a_job_round_trips_through_json(tmp_path):
    job = Job(student="alice", files={"01_vq_tokenization": "/subs/alice/01_vq_tokenization.ipynb"}, template="/work/template",
              scratch="/work/alice/scratch", source="/solutions", result="/work/alice/result.json", timeout=3600.0,
              memory_mb=8192, cell_timeout=600, hidden_max={"01_vq_tokenization": 2.0}, sandbox="bwrap",
              submissions="/subs", figures=False, reference_figures="/work/reference-figures")
    records.write(job, tmp_path / "job.json")
    assert records.read(Job, tmp_path / "job.json") == job
    assert json.loads((tmp_path / "job.json").read_text())["memory_mb"] == 8192  # plain JSON, no pickle


def test_a_report_and_a_result_round_trip_with_their_nested_records(tmp_path):
    report = Report("01", tests={"01_check": CheckVerdict("check_x", 0.0, 2.0, "expected 1, got 2", ["dot product"])},
                    hidden=[HiddenVerdict("nearest_code", 1.0, 1.0)], errors={"01_cell": "ValueError: x"},
                    reference={"01_cell": ["import maskgit_lab"]}, noise={"01_check": ["warned UserWarning: w"]},
                    figure=Figure("a caption", reference="/r.png", note="no picture"))
    records.write(report, tmp_path / "report.json")
    assert records.read(Report, tmp_path / "report.json") == report
    result = StudentResult("bob", rows=[Row("01", Status.PENALIZED, "uses the reference", score=3.0, max_score=5.0,
                                            checks=[CellCheck("01_check", "check_x", 0.0, 2.0, "uses the reference", ["no β"])]),
                                        Row("02", Status.MISSING_SHARD, "shard 1/2 wrote no results")],
                           figures={"01": Figure("c")}, sandbox="guard", seconds=12.5)
    records.write(result, tmp_path / "result.json")
    back = records.read(StudentResult, tmp_path / "result.json")
    assert back == result and back.rows[1].status is Status.MISSING_SHARD
    assert json.loads((tmp_path / "result.json").read_text())["rows"][1]["status"] == "missing shard"


def test_whole_numbers_read_back_as_floats_and_unknown_fields_are_refused():
    row = records.from_plain(Row, {"notebook": "01", "status": "graded", "reason": "ok", "score": 5, "hidden_max": 2})
    assert isinstance(row.score, float) and isinstance(row.hidden_max, float) and row.max_score is None
    with pytest.raises(ValueError, match="no field"):
        records.from_plain(Report, {"tests": {}, "verdict": "full marks"})
    with pytest.raises(ValueError):
        records.from_plain(Row, {"notebook": "01", "status": "excellent", "reason": ""})
