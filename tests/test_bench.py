"""The benchmarks run and report ratios; their speed targets are checked by reading, not here."""

import pytest
import torch

from maskgit_lab import bench
from maskgit_lab.bench import bench_attention, bench_evaluate, run_benchmarks, token_masks_of_test_set
from maskgit_lab.configs import get_config


def test_quick_benchmarks_report_positive_ratios(capsys):
    results = run_benchmarks(["decode", "attention"], quick=True)
    assert [r["name"].split()[0] for r in results] == ["decode", "attention"]
    assert all(r["fast"] > 0 and r["slow"] > 0 and r["ratio"] == r["slow"] / r["fast"] for r in results)
    out = capsys.readouterr().out
    assert "ratio one image at a time / batched = " in out and "ratio hand-built / SDPA = " in out, out


@pytest.mark.parametrize("ratio, verdict", [(25.0, "met"), (1.45, "not met")])
def test_a_report_names_both_sides_and_says_whether_the_target_was_met(ratio, verdict):
    row = bench.result("decode 16 test images", ("one image at a time", ratio), ("batched", 1.0), "s", at_least=20)
    assert row["met"] is (verdict == "met")
    assert bench.report(row) == (f"decode 16 test images: one image at a time {ratio:.3f} s, batched 1.000 s → ratio "
                                 f"one image at a time / batched = {ratio:.2f} "
                                 f"(target: batched ≥ 20× faster than one image at a time: {verdict})")


def test_a_ceiling_target_and_no_target_read_as_such():
    slower = bench.result("attention", ("hand-built", 1.6), ("SDPA", 1.0), "s", at_most=1.5)
    assert slower["met"] is False and bench.report(slower).endswith("(target: hand-built ≤ 1.5× slower than SDPA: not met)")
    free = bench.result("train", ("1 process", 2.0), ("2 DDP processes", 1.0), "s per image", note="no target: why")
    assert free["met"] is None and bench.report(free).endswith("= 2.00 (no target: why)")


def test_decode_benchmark_uses_the_test_set_masks_on_the_default_grid():
    masks = token_masks_of_test_set(get_config("default").vq.downsample, limit=5)
    assert masks.shape == (5, get_config("default").transformer.num_tokens) and masks.any(dim=1).all()
    assert token_masks_of_test_set(8, limit=5).shape == (5, 64)


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
    assert result["name"].startswith("evaluate 8 test images") and result["fast_side"] == "decode"
    assert result["fast"] > 0 and result["slow"] > 0
