"""The benchmarks run and report ratios; their speed targets are checked by reading, not here."""

import pytest
import torch

from maskgit_lab import bench
from maskgit_lab.bench import bench_attention, bench_evaluate, run_benchmarks, token_masks_of_test_set


def test_quick_benchmarks_report_positive_ratios(capsys):
    results = run_benchmarks(["decode", "attention"], quick=True)
    assert [r["name"].split()[0] for r in results] == ["decode", "attention"]
    assert all(r["fast"] > 0 and r["slow"] > 0 and r["ratio"] == r["slow"] / r["fast"] for r in results)
    assert "ratio" in capsys.readouterr().out


def test_decode_benchmark_uses_the_test_set_masks():
    masks = token_masks_of_test_set(limit=5)
    assert masks.shape == (5, 64) and masks.any(dim=1).all()


def test_attention_benchmark_compares_like_with_like():
    result = bench_attention(quick=True)
    assert "B=8 N=64 D=64 H=4" in result["name"]


def test_train_benchmark_times_both_precisions_and_one_vs_two_processes(capsys, monkeypatch):
    monkeypatch.setattr(bench, "default_device", lambda: torch.device("cpu"))  # CPU processes even beside a GPU
    precisions, processes = run_benchmarks(["train"], quick=True)
    assert "quick config" in precisions["name"] and "images/s" in precisions["name"]
    assert "in 1 process" in processes["name"] and "in 2 DDP processes" in processes["name"]
    for result in (precisions, processes):
        assert result["ratio"] == pytest.approx(result["slow"] / result["fast"]) and result["ratio"] > 0


def test_evaluate_benchmark_splits_decode_and_features(tmp_path, tiny_tokenizer, tiny_model, monkeypatch):
    from maskgit_lab import fid
    from maskgit_lab.checkpoint import save_checkpoint
    from tests.test_quality import STAND_IN

    save_checkpoint(tmp_path / "vq.pt", "vq", tiny_tokenizer)
    save_checkpoint(tmp_path / "mvtm.pt", "mvtm", tiny_model)
    monkeypatch.setattr(fid, "load_extractor", lambda: STAND_IN)
    result = bench_evaluate(quick=True, vq=tmp_path / "vq.pt", mvtm=tmp_path / "mvtm.pt")
    assert result["name"].startswith("evaluate 8 test images: decode")
    assert result["fast"] > 0 and result["slow"] > 0
