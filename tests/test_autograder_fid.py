"""The FID threshold check: on the CPU subset the reference decoder passes and decoders that ignore the model fail;
the lab config on a GPU."""

import os

import pytest
import torch

from autograder import fid_check
from maskgit_lab import decoding


def test_a_student_decode_step_is_called_without_the_package_flag():
    calls = []

    def step(*args, **kwargs):
        calls.append((args, kwargs))

    fid_check.student_step(step)(1, 2, fill_all=True)
    assert calls == [((1, 2), {})]  # fill_all is the package's own flag, not passed on


def test_a_student_step_decodes_like_the_package_when_it_is_the_package_one(tiny_model):
    tokens = torch.randint(0, 16, (3, 64), generator=torch.Generator().manual_seed(0))
    token_mask = torch.rand(3, 64, generator=torch.Generator().manual_seed(1)) < 0.5
    run = lambda step: decoding.iterative_decode(tiny_model, tokens, token_mask, generator=torch.Generator().manual_seed(2),  # noqa: E731
                                                 step=step)
    assert torch.equal(run(fid_check.student_step(decoding.decode_step)), run(decoding.decode_step))


def test_the_threshold_is_refused_for_another_default_decode_setting(monkeypatch):
    assert fid_check.decode_label() == fid_check.CPU_REFERENCE_DECODE  # what the shipped threshold was measured with
    monkeypatch.setattr(fid_check, "CPU_REFERENCE_DECODE", "linear T=4 τ=1 s=1")
    with pytest.raises(RuntimeError, match=rf"default decode setting changed \({fid_check.decode_label()}, threshold made for linear"):
        fid_check.check()


def test_the_threshold_sits_between_the_reference_and_the_white_code_fill():
    assert fid_check.CPU_REFERENCE_FID < fid_check.cpu_threshold() < fid_check.CPU_CONSTANT_FID
    assert fid_check.cpu_threshold() == pytest.approx(
        fid_check.CPU_REFERENCE_FID + fid_check.CPU_SHARE * (fid_check.CPU_CONSTANT_FID - fid_check.CPU_REFERENCE_FID))


def test_the_broken_steps_fill_every_unknown_token_at_once_and_keep_the_known_ones():
    tokens = torch.randint(0, 16, (2, 64), generator=torch.Generator().manual_seed(0))
    mask = torch.rand(2, 64, generator=torch.Generator().manual_seed(1)) < 0.5
    logits = torch.zeros(2, 64, 16)
    for step in (fid_check.constant_code_step(7), fid_check.random_code_step):
        filled, still = step(logits, tokens.masked_fill(mask, 16), mask, mask.sum(1), 0, 8, None, 1.0, 16,
                             torch.Generator().manual_seed(2))
        assert not still.any() and torch.equal(filled[~mask], tokens[~mask]) and (filled < 16).all()
    assert (fid_check.constant_code_step(7)(logits, tokens, mask, None, 0, 8, None, 1.0, 16)[0][mask] == 7).all()


def test_the_white_code_is_the_code_of_a_white_image():
    from maskgit_lab.checkpoint import SHIPPED_VQ, load_model

    tokenizer = load_model(SHIPPED_VQ, "vq")
    white = fid_check.white_code(tokenizer)
    assert (tokenizer.encode(torch.ones(1, 3, 64, 64)) == white).float().mean() > 0.9


def test_the_best_decoder_that_ignores_the_model_fails_the_cpu_threshold_and_the_reference_passes():
    """The white-code fill is the model-free decoder closest to the threshold (uniformly random codes score far worse:
    ``--calibrate`` measures both), so it is the one that must fail."""
    from maskgit_lab.checkpoint import SHIPPED_VQ, load_model

    white = fid_check.white_code(load_model(SHIPPED_VQ, "vq"))
    passed, fid, threshold = fid_check.check(fid_check.constant_code_step(white))
    assert not passed, f"a decoder that fills the hole with one white code passed: FID {fid:.2f} ≤ {threshold:.2f}"
    passed, fid, threshold = fid_check.check(decoding.decode_step)  # the student path, fed the reference step
    assert passed, f"the reference decoder failed: FID {fid:.2f} > {threshold:.2f}"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run `pytest -m gpu` on a GPU machine)")
def test_the_lab_config_passes_its_threshold_on_the_whole_test_set():
    vq, mvtm, limit = (os.environ.get(k) for k in ("MASKGIT_LAB_LAB_VQ", "MASKGIT_LAB_LAB_MVTM", "MASKGIT_LAB_LAB_FID_MAX"))
    if not (vq and mvtm and limit):
        pytest.skip("set MASKGIT_LAB_LAB_VQ, MASKGIT_LAB_LAB_MVTM and MASKGIT_LAB_LAB_FID_MAX (lab checkpoints are not shipped)")
    from maskgit_lab.configs import get_config

    fid = fid_check.decode_fid(limit=None, device="cuda", vq_path=vq, mvtm_path=mvtm, config=get_config("lab"))
    assert fid <= float(limit), f"FID {fid:.2f} > {limit}"
