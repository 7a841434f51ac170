"""Every known misconception of ``autograder/checks/variants.py``, written as a student would write it: the
notebook's solution cell with one line changed. The check that owns the property names that variant, and
every other check the notebook runs on the same function passes, so the points are lost only there."""

import itertools
import math

import nbformat
import pytest
import torch

from autograder import examples
from autograder.cells import grade_id, is_solution_cell
from autograder.checks import decoding as decoding_checks
from autograder.checks import mvtm as mvtm_checks
from autograder.checks import variants
from autograder.release import SOLUTIONS
from maskgit_lab import decoding
from maskgit_lab.masking import random_token_mask
from maskgit_lab.schedules import SCHEDULES, gamma

CELLS = {grade_id(cell): examples.strip_markers(cell.source)
         for path in sorted(SOLUTIONS.glob("0[34]_*.ipynb"))
         for cell in nbformat.read(str(path), as_version=4).cells if is_solution_cell(cell)}

# The checks each notebook's test cells run on a function, in the notebook's order.
CHECKS = {
    "04_annealed_temperature": [decoding_checks.check_annealed_temperature],
    "04_masked_after_step": [decoding_checks.check_masked_after_step],
    "04_decode_step": [decoding_checks.check_decode_step_keeps_decided, decoding_checks.check_decode_step_counts,
                       decoding_checks.check_decode_step_noise],
    "03_random_token_mask": [mvtm_checks.check_mask_counts, mvtm_checks.check_mask_randomness],
}
KEEPS, COUNTS, NOISE = CHECKS["04_decode_step"]
MASK_COUNTS, MASK_RANDOMNESS = CHECKS["03_random_token_mask"]

SAMPLE = "sampled = torch.multinomial(log_probs.exp().view(B * N, K), 1, generator=generator).view(B, N)"
SCORE = "confidence = log_probs.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)"
NOISE_TERM = "annealed_temperature(temperature, t, steps) * gumbel_noise((B, N), generator)"
PROTECT = 'confidence = confidence.masked_fill(~mask, float("inf"))'
COUNT = "n = masked_after_step(schedule, t, steps, n0)"
RANK = "ranks = confidence.argsort(dim=1).argsort(dim=1)"
AT_LEAST_ONE = "n = torch.where(n0 > 0, n.clamp(min=1), n)"
FLOOR = "torch.floor(schedule((t + 1) / steps) * n0.double())"

# (variant name, solution cell, (old, new) edits, the check that owns it)
BUGS = [
    ("no annealing", "04_annealed_temperature", [("temperature * (1 - (t + 1) / steps)", "temperature")], None),
    ("annealing off by one", "04_annealed_temperature", [("(t + 1) / steps", "t / steps")], None),
    ("annealing reversed", "04_annealed_temperature", [("temperature * (1 - (t + 1) / steps)", "temperature * (t + 1) / steps")], None),
    ("counts rounded up", "04_masked_after_step", [("torch.floor(", "torch.ceil(")], None),
    ("counts rounded to nearest", "04_masked_after_step", [("torch.floor(", "torch.round(")], None),
    ("counts off by one", "04_masked_after_step", [("schedule((t + 1) / steps)", "schedule(t / steps)")], None),
    ("counts drop to 0", "04_masked_after_step", [(AT_LEAST_ONE, "pass")], None),
    ("at least one also where n0 = 0", "04_masked_after_step", [(AT_LEAST_ONE, "n = n.clamp(min=1)")], None),
    ("1 - gamma", "04_masked_after_step", [("schedule((t + 1) / steps)", "(1 - schedule((t + 1) / steps))")], None),
    ("counts in float32", "04_masked_after_step", [("schedule((t + 1) / steps) * n0.double()",
                                                   "schedule(torch.tensor((t + 1) / steps)) * n0")], None),
    ("counts from the current mask", "04_decode_step", [(COUNT, "n = masked_after_step(schedule, t, steps, mask.sum(dim=1))")], COUNTS),
    ("counts of decoded tokens", "04_decode_step", [(COUNT, "n = n0 - masked_after_step(schedule, t, steps, n0)")], COUNTS),
    ("sample argmax", "04_decode_step", [(SAMPLE, "sampled = log_probs.argmax(dim=-1)")], NOISE),
    ("no per-token noise", "04_decode_step", [(NOISE_TERM, "0")], NOISE),
    ("no per-token noise", "04_decode_step", [("gumbel_noise((B, N), generator)", "gumbel_noise((1,), generator)")], NOISE),
    ("no per-token noise", "04_decode_step", [("gumbel_noise((B, N), generator)", "gumbel_noise((B, 1), generator)")], NOISE),
    ("confidence is p", "04_decode_step", [(SCORE, "confidence = log_probs.exp().gather(-1, sampled.unsqueeze(-1)).squeeze(-1)")], NOISE),
    ("confidence of the argmax", "04_decode_step", [(SCORE, "confidence = log_probs.max(dim=-1).values")], NOISE),
    ("confidence is the logit", "04_decode_step", [(SCORE, "confidence = logits.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)")], NOISE),
    ("noise not annealed", "04_decode_step", [(NOISE_TERM, "temperature * gumbel_noise((B, N), generator)")], NOISE),
    ("noise annealed the wrong way", "04_decode_step",
     [(NOISE_TERM, "temperature * (t + 1) / steps * gumbel_noise((B, N), generator)")], NOISE),
    ("noise annealed off by one", "04_decode_step",
     [(NOISE_TERM, "temperature * (1 - t / steps) * gumbel_noise((B, N), generator)")], NOISE),
    ("most confident re-masked", "04_decode_step", [(RANK, "ranks = confidence.argsort(dim=1, descending=True).argsort(dim=1)")], NOISE),
    ("decided tokens compete", "04_decode_step", [(PROTECT, "pass")], KEEPS),
    ("decided tokens get -inf", "04_decode_step", [(PROTECT, PROTECT.replace('"inf"', '"-inf"'))], KEEPS),
    ("kept tokens marked True", "03_random_token_mask", [("return ranks < counts", "return ranks >= counts")], None),
    ("coin flip per token", "03_random_token_mask",
     [("return ranks < counts.unsqueeze(1)", "return torch.rand(batch_size, num_tokens, generator=generator) < ratio.unsqueeze(1)")],
     MASK_COUNTS),
    ("ratio drawn inside", "03_random_token_mask",
     [("ratio = torch.as_tensor(ratio, dtype=torch.float64).expand(batch_size)",
       "ratio = torch.rand(batch_size, generator=generator, dtype=torch.float64)")], MASK_COUNTS),
    ("mask ratio rounded up", "03_random_token_mask", [("torch.floor(", "torch.ceil(")], None),
    ("mask ratio rounded to nearest", "03_random_token_mask", [("torch.floor(", "torch.round(")], None),
    ("no token masked for a small ratio", "03_random_token_mask", [("clamp(min=1, ", "clamp(min=0, ")], None),
    ("one ratio for every row", "03_random_token_mask",
     [("torch.as_tensor(ratio, dtype=torch.float64)", "torch.as_tensor(ratio, dtype=torch.float64).flatten()[0]")], None),
]
ALL = variants.ANNEALING + variants.COUNTS + variants.STEP_COUNTS + variants.STEP + variants.PROTECTION + variants.MASK_COUNTS
BY_NAME = {v.name: v for v in ALL}


def answer(cell: str, edits):
    """The solution cell with ``edits`` applied, run with the notebook's names; returns the function it defines."""
    source = CELLS[cell]
    for old, new in edits:
        assert old in source, f"{old!r} is no longer in the solution of {cell}"
        source = source.replace(old, new)
    namespace = {"torch": torch, "math": math, "gumbel_noise": decoding.gumbel_noise,
                 "annealed_temperature": decoding.annealed_temperature, "masked_after_step": decoding.masked_after_step}
    exec(compile(source, f"<{cell}>", "exec"), namespace)
    return namespace[cell.split("_", 1)[1]]


def test_every_variant_has_a_buggy_answer():
    assert len(BY_NAME) == len(ALL), "variant names must be unique"
    assert {name for name, *_ in BUGS} == set(BY_NAME)


@pytest.mark.parametrize("cell", sorted(CHECKS))
def test_the_solution_cells_pass_every_check(cell):
    for check in CHECKS[cell]:
        result = check(answer(cell, []))
        assert result.passed, result


@pytest.mark.parametrize("name, cell, edits, owner", BUGS, ids=[f"{b[0]}-{i}" for i, b in enumerate(BUGS)])
def test_the_owner_names_the_variant_and_no_other_check_fails(name, cell, edits, owner, capfd):
    student = answer(cell, edits)
    owner = owner or CHECKS[cell][0]
    for check in CHECKS[cell]:
        result = check(student)
        if check is owner:
            assert result.points == 0 and BY_NAME[name].words in result.message, result
        else:
            assert result.passed, f"{name} must not fail {result.check}: {result.message}"
    assert capfd.readouterr().err == ""


def test_the_step_variants_are_told_apart_by_what_they_re_mask():
    signatures = [decoding_checks._known_signature(-1)] + [decoding_checks._known_signature(i) for i in range(len(variants.STEP))]
    for (i, a), (j, b) in itertools.combinations(enumerate(signatures), 2):
        assert a != b, f"{(['reference'] + [v.name for v in variants.STEP])[i]} and {variants.STEP[j - 1].name} look alike"


def test_the_mask_variants_are_told_apart():
    signatures = [mvtm_checks._count_signature(fn) for fn in [random_token_mask] + [v.wrong for v in variants.MASK_COUNTS]]
    assert len(set(map(repr, signatures))) == len(signatures)


def test_the_count_variants_are_told_apart():
    runs = [(name, T, t) for name in SCHEDULES for T in range(1, 17) for t in range(T)]
    n0 = decoding_checks.N0
    traces = [tuple(tuple(count(gamma(name), t, T, n0).tolist()) for name, T, t in runs)
              for count in [decoding.masked_after_step] + [v.wrong for v in variants.COUNTS]]
    assert len(set(traces)) == len(traces)


def test_a_correct_step_with_its_own_last_step_passes():
    """Filling everything at the last step without asking γ is right: the noise check does not need the last count."""
    student = answer("04_decode_step", [(COUNT, COUNT + "\n    if t == steps - 1:\n        n = torch.zeros_like(n0)")])
    for check in CHECKS["04_decode_step"]:
        assert check(student).passed


def test_the_noise_check_refuses_to_guess_when_the_count_hides_the_ranking():
    student = answer("04_decode_step", [(COUNT, "n = torch.zeros_like(n0)")])
    result = NOISE(student)
    assert result.points == 0 and "check_decode_step_counts" in result.message, result
