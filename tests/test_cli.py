"""The command line: every command's help, the one argument validator, and the guards of data/ and outputs."""

import dataclasses
import os
import shutil
import signal

import pytest
import torch
from PIL import Image

from maskgit_lab import cli
from maskgit_lab import train as train_module
from maskgit_lab.checkpoint import SHIPPED_VQ, load_model, save_checkpoint
from maskgit_lab.cli import add_dataclass_args, build_parser, main
from maskgit_lab.configs import get_config
from maskgit_lab.outputs import SHIPPED_DATA, read_marker

COMMANDS = ["data", "train-vq", "train-mvtm", "ship", "inpaint", "generate", "fid", "score-tokenizer", "modelability", "bench", "demo"]
TINY_TRAIN = ["--steps", "2", "--batch-size", "2", "--max-images", "4", "--log-every", "1", "--save-every", "1"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: python -m maskgit_lab " + command in capsys.readouterr().out


def test_training_flags_come_from_the_dataclasses():
    args = build_parser().parse_args(["train-mvtm", "--steps", "7", "--hflip", "false", "--schedule", "arccos"])
    assert (args.steps, args.hflip, args.schedule) == (7, False, "arccos")


def test_dropout_outside_zero_to_one_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["train-mvtm", "--dropout", "1"])
    assert "must be a finite number in [0, 1), got '1'" in capsys.readouterr().err


def test_unknown_schedule_is_refused_with_the_valid_names(capsys):
    with pytest.raises(SystemExit):
        main(["inpaint", "--schedule", "cosin"])
    assert "invalid choice: 'cosin' (choose from 'cosine', 'linear', 'square', 'cubic', 'sqrt', 'arccos')" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["inpaint", "demo"])
def test_step_count_below_one_is_refused(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--steps", "0"])
    assert "decoding steps T must be an integer ≥ 1, got '0'" in capsys.readouterr().err


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
    assert f"patch encoder, K={load_model(SHIPPED_VQ, 'vq').cfg.num_codes}, 16 test images" in out
    assert "known tokens changed by the hole (masked image vs ground truth): 0.0%" in out  # a patch encoder, by construction


# --- the validator: every bad value is one line, exit 2, and nothing written -----------------


def run(argv, capsys):
    """Exit code and stderr of the command, whether argparse or the command refused it."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


def files_under(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def shipped_before():
    """data/ as it was before the refused commands ran: every one of them must leave it alone."""
    before = files_under(SHIPPED_DATA)
    yield before
    assert files_under(SHIPPED_DATA) == before, "a refused command changed data/"


def images(folder, count, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        Image.new("RGB", (64, 64), (i, 0, 0)).save(folder / f"image_{i:03d}.png")
    return folder


BAD_ARGUMENTS = [
    (["inpaint", "--out", "{data}/emoji/test/test_gt"], "is inside the shipped data/; write elsewhere"),
    (["inpaint", "--temperature", "nan"], "--temperature: must be a finite number ≥ 0, got 'nan'"),
    (["inpaint", "--temperature", "inf"], "--temperature: must be a finite number ≥ 0, got 'inf'"),
    (["inpaint", "--temperature", "-1"], "--temperature: must be a finite number ≥ 0, got '-1'"),
    (["inpaint", "--sample-temperature", "0"], "--sample-temperature: must be a finite number > 0, got '0'"),
    (["generate", "--first-sample-temperature", "nan"], "--first-sample-temperature: must be a finite number > 0, got 'nan'"),
    (["inpaint", "--retokenize", "-1"], "--retokenize: the value must be an integer ≥ 0, got '-1'"),
    (["inpaint", "--blur", "-0.5"], "--blur: must be a finite number ≥ 0, got '-0.5'"),
    (["inpaint", "--blur", "nan"], "--blur: must be a finite number ≥ 0, got 'nan'"),
    (["inpaint", "--batch-size", "0"], "--batch-size: the value must be an integer ≥ 1, got '0'"),
    (["inpaint", "--limit", "0"], "--limit: the value must be an integer ≥ 1, got '0'"),
    (["inpaint", "--limit", "-1"], "--limit: the value must be an integer ≥ 1, got '-1'"),
    (["inpaint", "-T", "10000"], "-T 10000 is more decoding steps than the 256 tokens of an image (config 'default'), so some steps would decode nothing; use -T ≤ 256"),
    (["inpaint", "-T", "8", "--sweet-spot", "9"], "--sweet-spot 9 stops after more steps than -T 8; use ≤ 8"),
    (["inpaint", "--vq", "{tmp}/none.pt"], "none.pt is missing; give the path of an existing file"),
    (["inpaint", "--data-root", "{tmp}/nowhere"], "nowhere is missing; give the path of an existing folder"),
    (["train-vq", "--batch-size", "0"], "--batch-size: the value must be an integer ≥ 1, got '0'"),
    (["train-vq", "--hflip", "maybe"], "--hflip: must be true or false, got 'maybe'"),
    (["train-vq", "--hflip", "1"], "--hflip: must be true or false, got '1'"),
    (["train-vq", "--max-images", "0"], "--max-images: the value must be an integer ≥ 1, got '0'"),
    (["train-vq", "--steps", "0"], "--steps: the value must be an integer ≥ 1, got '0'"),
    (["train-vq", "--lr", "0"], "--lr: must be a finite number > 0, got '0'"),
    (["train-vq", "--init", "{tmp}/none.pt"], "none.pt is missing; give the path of an existing file"),
    (["train-vq", "--export", "{tmp}"], "is a folder; give a file name such as"),
    (["train-vq", "--export", "{data}/checkpoints/vq.pt"], "replace a shipped checkpoint only with `python -m maskgit_lab ship`"),
    (["train-vq", "--run-dir", "{data}/runs"], "is inside the shipped data/; write elsewhere"),
    (["train-vq", "--num-codes", "1"], "the codebook size K must be an integer ≥ 2, got '1'"),
    (["train-mvtm", "--ema", "1"], "--ema: must be a finite number in [0, 1), got '1'"),
    (["train-mvtm", "--accumulate", "0"], "--accumulate: the value must be an integer ≥ 1, got '0'"),
    (["train-mvtm", "--inpaint-masks", "1.5"], "--inpaint-masks: must be a finite number in [0, 1], got '1.5'"),
    (["train-mvtm", "--tokenizer", "{tmp}"], "is a folder; give the path of an existing file"),
    (["--threads", "0", "bench"], "--threads: the value must be an integer ≥ 1, got '0'"),
    (["demo", "--rows", "0"], "--rows: the value must be an integer ≥ 1, got '0'"),
    (["demo", "--out", "{data}/demo"], "is inside the shipped data/; write elsewhere"),
    (["fid", "{tmp}/a", "{tmp}/nowhere"], "nowhere is missing; give the path of an existing folder"),
    (["modelability", "--probe-inpaint-masks", "2"], "--probe-inpaint-masks: must be a finite number in [0, 1], got '2'"),
    (["data", "prepare", "--from", "{tmp}/a/image_000.png", "--out", "{tmp}/new"], "image_000.png is not a readable .tgz"),
    (["generate", "--label", "cats"], "--label: unknown class 'cats'; choose one of: smileys, people, animals"),
    (["generate", "--label", "flags", "--cfg", "-1"], "--cfg: must be a finite number ≥ 0, got '-1'"),
    (["generate", "--label", "flags", "--cfg", "nan"], "--cfg: must be a finite number ≥ 0, got 'nan'"),
    (["generate", "--label", "flags", "-n", "0"], "-n: the number of images must be an integer ≥ 1, got '0'"),
    (["generate", "--label", "flags", "-T", "0"], "decoding steps T must be an integer ≥ 1, got '0'"),
    (["generate", "--label", "flags", "--out", "{data}/gen"], "is inside the shipped data/; write elsewhere"),
    (["generate", "--label", "flags", "--mvtm", "{data}/checkpoints/mvtm.pt"],
     "mvtm.pt is unconditional and takes no class label; pass --mvtm"),
    (["generation-quality", "--mvtm", "{data}/checkpoints/mvtm.pt"], "mvtm.pt is unconditional and takes no class label"),
    (["generation-quality", "--out", "{data}/table"], "is inside the shipped data/; write elsewhere"),
    (["generation-quality", "--limit", "0"], "--limit: the value must be an integer ≥ 1, got '0'"),
    (["inpaint", "--label", "true"], "mvtm.pt is unconditional and takes no class label; pass --mvtm"),
    (["inpaint", "--label", "dogs"], "--label: unknown class 'dogs'; choose one of"),
    (["inpaint", "--cfg", "inf"], "--cfg: must be a finite number ≥ 0, got 'inf'"),
    (["train-mvtm", "--p-uncond", "1.5"], "--p-uncond: must be a finite number in [0, 1], got '1.5'"),
    (["train-mvtm", "--conditional", "yes"], "--conditional: must be true or false, got 'yes'"),
    # a target that cannot be written, checked before any work: /proc/sys refuses new files even to root (as a
    # read-only file system would), and a file stands where a folder is needed
    (["inpaint", "--out", "/proc/sys/inpaint"], "--out: /proc/sys/inpaint cannot be written: /proc/sys is read-only"),
    (["demo", "--out", "/proc/sys/demo"], "--out: /proc/sys/demo cannot be written: /proc/sys is read-only"),
    (["train-vq", "--run-dir", "/proc/sys/vq"], "--run-dir: /proc/sys/vq cannot be written: /proc/sys is read-only"),
    (["train-vq", "--export", "/proc/sys/vq.pt"], "--export: /proc/sys/vq.pt cannot be written: /proc/sys is read-only"),
    (["inpaint", "--out", "{tmp}/a/image_000.png/out"],
     "image_000.png/out cannot be written: {tmp}/a/image_000.png is a file, not a folder"),
    (["train-vq", "--run-dir", "{tmp}/run", "--export", "{tmp}/run"], "--export {tmp}/run is the --run-dir; give the checkpoint a "
                                                                      "file name of its own, e.g. --export {tmp}/run.pt"),
    # refused once the run folder is locked: the default runs/vq (runs/mvtm) must not stay behind
    (["train-vq", "--data-root", "{tmp}/a"] + TINY_TRAIN, "no image folder {tmp}/a/train"),
    (["train-vq", "--init", "{tmp}/a/image_000.png"] + TINY_TRAIN, "image_000.png is not a readable checkpoint"),
    (["train-mvtm", "--tokenizer", "{tmp}/a/image_000.png"] + TINY_TRAIN, "image_000.png is not a readable checkpoint"),
    (["train-vq", "--resume", "--run-dir", "{tmp}/runs/gone"], "nothing to resume: {tmp}/runs/gone/state.pt does not exist"),
    (["train-vq", "--batch-size", "5", "--max-images", "4"], "--batch-size 5 is more than the 4 training images; a batch draws "
                                                             "from them with replacement"),
    (["train-mvtm", "--batch-size", "9", "--max-images", "4"], "--batch-size 9 is more than the 8 training images and their "
                                                               "mirror images; a batch draws from them with replacement"),
    (["ship", "vq", "{tmp}/a", "--to", "{data}/checkpoints/new.pt"], "{tmp}/a holds no state.pt: not a training run"),
]


@pytest.mark.parametrize("argv, message", BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_a_bad_value_is_one_line_exit_2_and_writes_nothing(argv, message, tmp_path, capsys, monkeypatch, shipped_before):
    monkeypatch.chdir(tmp_path)  # where the default outputs (artifacts/, runs/) would appear
    images(tmp_path / "a", 1)
    before = files_under(tmp_path)
    code, err = run([arg.replace("{tmp}", str(tmp_path)).replace("{data}", str(SHIPPED_DATA)) for arg in argv], capsys)
    assert code == 2
    assert err.count("\n") == 1 and message.replace("{tmp}", str(tmp_path)) in err, err
    assert "Traceback" not in err and files_under(tmp_path) == before


def test_every_training_field_needs_a_domain():
    @dataclasses.dataclass
    class NewConfig:
        steps: int = 1
        dream_weight: float = 0.5

    with pytest.raises(KeyError, match="NewConfig.dream_weight has no domain; add one to maskgit_lab.cli.DOMAINS"):
        add_dataclass_args(build_parser(), NewConfig)


# --- outputs: data/ untouched, no stale files, fid knows what it scores ----------------------


def test_a_second_inpaint_leaves_no_stale_image_and_fid_is_warned(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--threads", "1", "inpaint", "--limit", "4", "--out", str(out)]) == 0
    assert main(["--threads", "1", "inpaint", "--limit", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["image_000.png", "image_001.png"]
    assert read_marker(out)["ground_truth"].endswith("data/emoji/test/test_gt")
    capsys.readouterr()
    code, err = run(["fid", str(out), str(SHIPPED_DATA / "emoji" / "test" / "test_gt")], capsys)
    assert (code, err) == (2, f"error: {out} holds 2 images; FID needs at least 50 per set (with fewer it mostly "
                              f"measures the set size): score more images, e.g. inpaint without --limit\n")
    (out / "notes.png").write_bytes(b"")
    code, err = run(["inpaint", "--limit", "2", "--out", str(out)], capsys)
    assert code == 2 and "already holds files this command did not write (notes.png, 1 in all)" in err
    assert "pass --overwrite" in err


def test_fid_names_a_corrupt_image_in_one_line(tmp_path, capsys):
    folder = images(tmp_path / "a", 50)
    (folder / "image_007.png").write_bytes(b"not a png")
    code, err = run(["fid", str(folder), str(folder)], capsys)
    assert code == 2 and err.count("\n") == 1 and f"error: {folder / 'image_007.png'}: not a readable image" in err, err


def test_fid_refuses_small_sets_and_names_both_counts(tmp_path, capsys):
    code, err = run(["fid", str(images(tmp_path / "a", 3)), str(images(tmp_path / "b", 5))], capsys)
    assert code == 2 and err == (f"error: {tmp_path / 'a'} holds 3 images; FID needs at least 50 per set (with fewer "
                                 f"it mostly measures the set size): score more images, e.g. inpaint without --limit\n")


# --- training runs: extend, export, ship, Ctrl-C ---------------------------------------------


def test_resume_extends_a_finished_run_and_the_log_shows_both_phases(tmp_path, capsys):
    run_dir = tmp_path / "vq"
    common = ["--threads", "1", "train-vq", "--run-dir", str(run_dir)]
    assert main(common + TINY_TRAIN + ["--export", str(tmp_path / "vq.pt")]) == 0
    more = ["--steps", "4"] + TINY_TRAIN[2:]
    assert main(common + more + ["--resume", "--export", str(tmp_path / "vq.pt"), "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert f"resuming {run_dir} at step 2 as phase 2: steps 2 → 4" in out
    log = (run_dir / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,phase,") and [row.split(",")[:2] for row in log[1:]] == [
        ["1", "1"], ["2", "1"], ["3", "2"], ["4", "2"]]
    code, err = run(common + more + ["--resume", "--lr", "0.001"], capsys)
    assert code == 2 and "started with other settings (lr was 0.0002, now 0.001)" in err and err.count("\n") == 1
    assert "only steps, log_every, save_every may change on --resume" in err


def test_train_mvtm_takes_the_codebook_size_of_a_tokenizer_trained_with_num_codes(tmp_path, capsys):
    assert main(["--threads", "1", "train-vq", "--num-codes", "24", "--run-dir", str(tmp_path / "vq"), "--export",
                 str(tmp_path / "vq.pt")] + TINY_TRAIN) == 0
    mvtm = ["--threads", "1", "train-mvtm", "--tokenizer", str(tmp_path / "vq.pt")] + TINY_TRAIN
    code, err = run(mvtm + ["--run-dir", str(tmp_path / "refused")], capsys)
    assert code == 2 and "makes K=24, N=256, but the transformer config wants K=1024, N=256: pass --num-codes 24" in err
    assert not (tmp_path / "refused").exists()  # refused after its folder was locked: nothing stays behind
    assert main(mvtm + ["--num-codes", "24", "--run-dir", str(tmp_path / "mvtm"), "--export", str(tmp_path / "mvtm.pt")]) == 0
    assert load_model(tmp_path / "mvtm.pt", "mvtm").cfg.num_codes == 24
    other = load_model(tmp_path / "vq.pt", "vq")  # the same config, other weights: other tokens
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    save_checkpoint(tmp_path / "other.pt", "vq", other)
    capsys.readouterr()
    resume = mvtm + ["--num-codes", "24", "--run-dir", str(tmp_path / "mvtm"), "--resume", "--steps", "3"]
    code, err = run(resume + ["--tokenizer", str(tmp_path / "other.pt")], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{tmp_path / 'mvtm'} was trained on the tokens of another tokenizer ({tmp_path / 'vq.pt'}, weights sha256 " in err
    assert f"resume with --tokenizer {tmp_path / 'vq.pt'}, or start a new --run-dir" in err
    shutil.copy(tmp_path / "vq.pt", tmp_path / "copy.pt")  # the same weights under another name
    assert main(resume + ["--tokenizer", str(tmp_path / "copy.pt")]) == 0


def test_export_refuses_an_existing_file_before_training(tmp_path, capsys):
    (tmp_path / "vq.pt").write_bytes(b"mine")
    code, err = run(["train-vq", "--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "vq.pt")] + TINY_TRAIN, capsys)
    assert (code, err) == (2, f"error: --export {tmp_path / 'vq.pt'} already exists; pick another file or pass "
                              f"--overwrite to replace it\n")
    assert not (tmp_path / "run").exists() and (tmp_path / "vq.pt").read_bytes() == b"mine"


def test_ship_is_the_one_way_into_the_shipped_checkpoints(tmp_path, capsys, monkeypatch):
    assert main(["--threads", "1", "train-vq", "--run-dir", str(tmp_path / "run")] + TINY_TRAIN) == 0
    capsys.readouterr()
    code, err = run(["ship", "vq", str(tmp_path / "run")], capsys)
    assert (code, err) == (2, f"error: {SHIPPED_VQ} is a shipped checkpoint; pass --overwrite to replace it "
                              f"with {tmp_path / 'run'}\n")
    code, err = run(["ship", "vq", str(tmp_path / "run"), "--to", str(tmp_path / "vq.pt")], capsys)
    assert code == 2 and "is outside" in err and "export anywhere else with train-vq --export" in err
    shipped = tmp_path / "checkpoints"  # stands in for data/checkpoints
    shipped.mkdir()
    (shipped / "vq.pt").write_bytes(b"old")
    monkeypatch.setattr(cli, "SHIPPED_CHECKPOINTS", shipped)
    monkeypatch.setattr(cli, "SHIPPED_VQ", shipped / "vq.pt")
    code, err = run(["ship", "mvtm", str(tmp_path / "run"), "--to", str(shipped / "mvtm.pt")], capsys)
    assert (code, err) == (2, f"error: {tmp_path / 'run'} is a train-vq run, not train-mvtm: ship it as vq "
                              f"(python -m maskgit_lab ship vq {tmp_path / 'run'}), or give a train-mvtm run\n")
    tiny = train_module.VQTrainConfig(steps=2, batch_size=2, max_images=4, log_every=1, save_every=1)  # TINY_TRAIN's
    with train_module.RunDir(tmp_path / "run", True, get_config("default").vq, tiny):  # the run, training again
        code, err = run(["ship", "vq", str(tmp_path / "run"), "--overwrite"], capsys)
    assert (code, err) == (2, f"error: {tmp_path / 'run'} is still training (pid {os.getpid()} holds its lock); export it "
                              f"when that run has finished\n")
    assert (shipped / "vq.pt").read_bytes() == b"old" and not (shipped / "mvtm.pt").exists()
    assert main(["ship", "vq", str(tmp_path / "run"), "--overwrite"]) == 0
    assert torch.load(shipped / "vq.pt", weights_only=True)["meta"]["steps"] == 2


def test_ctrl_c_saves_says_how_to_resume_and_exits_130(tmp_path, capsys, monkeypatch):
    handler_before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the tests run in the background (nohup, setsid &)
    calls = []
    edge_loss = train_module.edge_loss

    def ctrl_c_in_step_2(*args):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return edge_loss(*args)

    monkeypatch.setattr(train_module, "edge_loss", ctrl_c_in_step_2)
    run_dir = tmp_path / "run"
    argv = ["--threads", "1", "train-vq", "--run-dir", str(run_dir), "--steps", "5", "--batch-size", "2",
            "--max-images", "4", "--save-every", "100"]
    code, err = run(argv, capsys)
    assert code == 130 and "Traceback" not in err
    assert err.splitlines()[-1] + "\n" == (f"stopped by Ctrl-C after step 2 of 5; saved {run_dir / 'state.pt'}; continue with: "
                   f"python -m maskgit_lab {' '.join(argv)} --resume\n")
    assert torch.load(run_dir / "state.pt", weights_only=False)["step"] == 2
    assert signal.getsignal(signal.SIGINT) is handler_before  # the handler is put back
    assert main(argv + ["--resume"]) == 0
    assert torch.load(run_dir / "state.pt", weights_only=False)["step"] == 5


def test_a_second_run_in_a_run_dir_in_use_gets_one_line(tmp_path, capsys):
    cfg = get_config("default")
    with train_module.RunDir(tmp_path / "run", False, cfg.vq, train_module.VQTrainConfig()):
        code, err = run(["train-vq", "--run-dir", str(tmp_path / "run")] + TINY_TRAIN, capsys)
    assert (code, err) == (2, f"error: --run-dir {tmp_path / 'run'} is in use by another training run (pid {os.getpid()}); "
                              f"wait for it to finish, or give another --run-dir\n")
    assert main(["--threads", "1", "train-vq", "--run-dir", str(tmp_path / "run")] + TINY_TRAIN) == 0  # free again


def test_a_file_that_is_not_a_checkpoint_is_one_line_without_unsafe_advice(tmp_path, capsys):
    (tmp_path / "random.pt").write_bytes(os.urandom(4096))
    code, err = run(["inpaint", "--vq", str(tmp_path / "random.pt"), "--out", str(tmp_path / "out")], capsys)
    assert not (tmp_path / "out").exists()  # the folder is claimed only once results are ready
    assert (code, err) == (2, f"error: {tmp_path / 'random.pt'} is not a readable checkpoint (not a torch file, or corrupt "
                              f"or truncated); give a file written by `python -m maskgit_lab train-vq --export`, or restore it\n")
    assert "weights_only" not in err
