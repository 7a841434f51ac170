"""The benchmarks run and report ratios; their speed targets are checked by reading, not here."""

from maskgit_lab.bench import bench_attention, run_benchmarks, token_masks_of_test_set


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
