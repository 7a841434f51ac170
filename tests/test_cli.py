import pytest

from maskgit_lab.checkpoint import SHIPPED_VQ
from maskgit_lab.cli import build_parser, main

COMMANDS = ["data", "train-vq", "train-mvtm", "inpaint", "fid", "score-tokenizer", "modelability", "bench", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: python -m maskgit_lab " + command in capsys.readouterr().out


def test_training_flags_come_from_the_dataclasses():
    args = build_parser().parse_args(["train-mvtm", "--steps", "7", "--hflip", "false", "--schedule", "arccos"])
    assert (args.steps, args.hflip, args.schedule) == (7, False, "arccos")


def test_unknown_schedule_is_refused_with_the_valid_names(capsys):
    with pytest.raises(SystemExit):
        main(["inpaint", "--schedule", "cosin"])
    assert "invalid choice: 'cosin' (choose from 'cosine', 'linear', 'square', 'cubic', 'sqrt', 'arccos')" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["inpaint", "demo"])
def test_step_count_below_one_is_refused(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--steps", "0"])
    assert "decoding steps T must be an integer ≥ 1, got '0'" in capsys.readouterr().err


def test_missing_checkpoint_is_one_clear_line(tmp_path, capsys):
    code = main(["inpaint", "--vq", str(tmp_path / "none.pt"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: checkpoint") and "train one with `python -m maskgit_lab train-vq`" in err


def test_data_verify_passes_on_the_shipped_data(capsys):
    assert main(["data", "verify"]) == 0
    assert "data OK" in capsys.readouterr().out


def test_bench_runs_from_the_command_line(capsys):
    assert main(["bench", "attention", "--quick"]) == 0
    assert "hand-built ≤ 1.5× slower than SDPA" in capsys.readouterr().out


def test_unknown_benchmark_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "speed"])
    assert "unknown benchmark 'speed'; choose one of: decode, attention, train, evaluate" in capsys.readouterr().err


def test_modelability_reports_the_shipped_tokenizers_diagnostics(capsys):
    assert main(["modelability", "--vq", str(SHIPPED_VQ), "--limit", "16"]) == 0
    out = capsys.readouterr().out
    assert "patch encoder, K=128, 16 test images" in out
    assert "known tokens changed by the hole (masked image vs ground truth): 0.0%" in out  # a patch encoder, by construction
