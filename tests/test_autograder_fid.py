"""The FID threshold check: the reference decoder passes on the CPU subset; the lab config on a GPU."""

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
    monkeypatch.setattr(fid_check, "CPU_REFERENCE_DECODE", "linear T=4 τ=1")
    with pytest.raises(RuntimeError, match=r"default decode setting changed \(cosine T=8 τ=4.5, threshold made for linear"):
        fid_check.check()


def test_the_threshold_lives_in_one_constant_with_its_margin():
    assert fid_check.cpu_threshold() == pytest.approx(fid_check.CPU_REFERENCE_FID * (1 + fid_check.CPU_MARGIN))


def skip_unless_selected(request):
    """Slow tests run only when asked for (`pytest -m slow`): `make test` selects no marker."""
    expression = request.config.getoption("markexpr") or ""
    if "slow" not in expression or "not slow" in expression:
        pytest.skip("slow: run with `pytest -m slow`")


@pytest.mark.slow
def test_the_reference_decode_path_passes_the_cpu_threshold(request):
    skip_unless_selected(request)
    passed, fid, threshold = fid_check.check(decoding.decode_step)  # the student path, fed the reference step
    assert passed, f"FID {fid:.2f} > {threshold:.2f}"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run `pytest -m gpu` on a GPU machine)")
def test_the_lab_config_passes_its_threshold_on_the_whole_test_set():
    vq, mvtm, limit = (os.environ.get(k) for k in ("MASKGIT_LAB_LAB_VQ", "MASKGIT_LAB_LAB_MVTM", "MASKGIT_LAB_LAB_FID_MAX"))
    if not (vq and mvtm and limit):
        pytest.skip("set MASKGIT_LAB_LAB_VQ, MASKGIT_LAB_LAB_MVTM and MASKGIT_LAB_LAB_FID_MAX (lab checkpoints are not shipped)")
    from maskgit_lab.configs import get_config

    fid = fid_check.decode_fid(limit=None, device="cuda", vq_path=vq, mvtm_path=mvtm, config=get_config("lab"))
    assert fid <= float(limit), f"FID {fid:.2f} > {limit}"
