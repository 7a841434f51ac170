"""The notebook-03 checks: the package's references pass, each classic mistake fails with words a student understands."""

import json
import math
import re
import warnings
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

import autograder.checks.mvtm
from autograder.checks.mvtm import (
    check_gamma_endpoints,
    check_gamma_laws,
    check_label_smoothing,
    check_mask_counts,
    check_mask_randomness,
    check_masked_token_loss,
)
from maskgit_lab.masking import random_token_mask
from maskgit_lab.mvtm import masked_token_loss


def assert_fails(result, *words):
    assert result.points == 0, f"expected 0 points, got {result}"
    for word in words:
        assert word.lower() in result.message.lower(), f"{word!r} not in: {result.message}"


# --- γ(r) ------------------------------------------------------------------------------------

LAWS = {
    "cosine": lambda r: torch.cos(r * math.pi / 2),
    "linear": lambda r: 1 - r,
    "square": lambda r: 1 - r**2,
    "cubic": lambda r: 1 - r**3,
    "sqrt": lambda r: 1 - torch.sqrt(r),
    "arccos": lambda r: torch.arccos(r) / (math.pi / 2),
}


def gamma_with(**changed):
    """A student's gamma(name) with some laws replaced."""
    laws = {**LAWS, **changed}
    return lambda name: laws[name]


def test_hand_written_laws_pass():
    assert check_gamma_endpoints(gamma_with()).passed
    assert check_gamma_laws(gamma_with()).passed


def test_revealed_fraction_instead_of_masked():
    student = lambda name: (lambda r: 1 - LAWS[name](r))  # noqa: E731
    assert_fails(check_gamma_endpoints(student), "revealed", "γ(0) = 1")
    assert_fails(check_gamma_laws(student), "1 − γ", "revealed")


def test_unnormalised_arccos():
    student = gamma_with(arccos=lambda r: torch.arccos(r))
    assert_fails(check_gamma_endpoints(student), "arccos", "π/2")
    assert_fails(check_gamma_laws(student), "π/2")


def test_cosine_of_pi_r_goes_negative():
    student = gamma_with(cosine=lambda r: torch.cos(math.pi * r))
    assert_fails(check_gamma_endpoints(student), "normalised", "π/2·r")
    assert_fails(check_gamma_laws(student), "cos(π/2 · r)")


def test_increasing_in_the_middle():
    student = gamma_with(linear=lambda r: torch.where((r >= 0.4) & (r < 0.5), 0.7, 1 - r))  # a step up at r = 0.4
    assert_fails(check_gamma_endpoints(student), "increases", "never increases")


@pytest.mark.parametrize("name, law, words", [
    ("square", lambda r: (1 - r) ** 2, ["(1 − r)²", "1 − r²"]),
    ("cubic", lambda r: (1 - r) ** 3, ["(1 − r)³"]),
    ("sqrt", lambda r: torch.sqrt(1 - r), ["√(1 − r)"]),
    ("cubic", LAWS["square"], ["'square' schedule", "which formula goes with which name"]),
    ("square", lambda r: 1 - r**2.5, ["gamma('square')", "expected", "compare your formula"]),
])
def test_wrong_law_is_named(name, law, words):
    student = gamma_with(**{name: law})
    assert check_gamma_endpoints(student).passed  # still normalised and decreasing
    assert_fails(check_gamma_laws(student), *words)


def test_math_functions_instead_of_torch():
    student = gamma_with(cosine=lambda r: math.cos(r * math.pi / 2))  # fails on a tensor with many values
    assert_fails(check_gamma_endpoints(student), "torch functions", "not math")


def test_scalar_result_is_refused():
    student = gamma_with(linear=lambda r: torch.tensor(0.5))
    assert_fails(check_gamma_endpoints(student), "element by element")


def test_not_returning_a_function():
    assert_fails(check_gamma_endpoints(lambda name: 0.5), "return a function")


# --- exact-count masks -----------------------------------------------------------------------


def counts_for(ratio, batch_size, num_tokens, rounding=math.floor, at_least_one=True):
    ratio = torch.as_tensor(ratio, dtype=torch.float64).expand(batch_size)
    counts = torch.tensor([rounding(float(v) * num_tokens) for v in ratio])
    return counts.clamp(min=1 if at_least_one else 0, max=num_tokens)


def mask_from_counts(counts, batch_size, num_tokens, generator):
    scores = torch.rand(batch_size, num_tokens, generator=generator)
    return scores.argsort(dim=1).argsort(dim=1) < counts.unsqueeze(1)


def test_hand_written_mask_passes():
    def student(batch_size, num_tokens, ratio, generator=None):
        return mask_from_counts(counts_for(ratio, batch_size, num_tokens), batch_size, num_tokens, generator)

    assert check_mask_counts(student).passed and check_mask_randomness(student).passed


def test_kept_tokens_marked_true():
    def student(batch_size, num_tokens, ratio, generator=None):
        return ~random_token_mask(batch_size, num_tokens, ratio, generator)

    assert_fails(check_mask_counts(student), "KEPT", "True must mean masked")


def test_bernoulli_per_token():
    def student(batch_size, num_tokens, ratio, generator=None):
        ratio = torch.as_tensor(ratio, dtype=torch.float32).expand(batch_size).unsqueeze(1)
        return torch.rand(batch_size, num_tokens, generator=generator) < ratio

    assert_fails(check_mask_counts(student), "changes from row to row", "EXACTLY")


@pytest.mark.parametrize("rounding", [math.ceil, round])
def test_rounded_up_or_to_nearest(rounding):
    def student(batch_size, num_tokens, ratio, generator=None):
        return mask_from_counts(counts_for(ratio, batch_size, num_tokens, rounding), batch_size, num_tokens, generator)

    assert_fails(check_mask_counts(student), "floor(ratio·N)")


def test_zero_masked_tokens_for_a_small_ratio():
    def student(batch_size, num_tokens, ratio, generator=None):
        counts = counts_for(ratio, batch_size, num_tokens, at_least_one=False)
        return mask_from_counts(counts, batch_size, num_tokens, generator)

    assert_fails(check_mask_counts(student), "at least one")


def test_one_count_for_every_row():
    def student(batch_size, num_tokens, ratio, generator=None):
        first = float(torch.as_tensor(ratio).flatten()[0])  # ignores the per-row ratios
        return mask_from_counts(counts_for(first, batch_size, num_tokens), batch_size, num_tokens, generator)

    assert_fails(check_mask_counts(student), "its own ratio", "one count per row")


def test_float_mask_instead_of_bool():
    def student(batch_size, num_tokens, ratio, generator=None):
        return random_token_mask(batch_size, num_tokens, ratio, generator).float()

    assert_fails(check_mask_counts(student), "bool")


def test_generator_ignored():
    def student(batch_size, num_tokens, ratio, generator=None):
        return random_token_mask(batch_size, num_tokens, ratio)  # global RNG

    assert check_mask_counts(student).passed
    assert_fails(check_mask_randomness(student), "generator", "seed")


def test_seeded_inside():
    def student(batch_size, num_tokens, ratio, generator=None):
        return random_token_mask(batch_size, num_tokens, ratio, torch.Generator().manual_seed(0))

    assert_fails(check_mask_randomness(student), "different seeds", "do not seed inside")


def test_same_positions_in_every_row():
    def student(batch_size, num_tokens, ratio, generator=None):
        scores = torch.rand(1, num_tokens, generator=generator).expand(batch_size, num_tokens)  # one draw for all rows
        return scores.argsort(dim=1).argsort(dim=1) < counts_for(ratio, batch_size, num_tokens).unsqueeze(1)

    assert check_mask_counts(student).passed
    assert_fails(check_mask_randomness(student), "same positions")


def test_positions_biased_towards_the_start():
    def student(batch_size, num_tokens, ratio, generator=None):
        counts = counts_for(ratio, batch_size, num_tokens)
        scores = torch.rand(batch_size, num_tokens, generator=generator)
        scores[:, num_tokens * 3 // 4:] += 1  # the last quarter is never picked
        return scores.argsort(dim=1).argsort(dim=1) < counts.unsqueeze(1)

    assert check_mask_counts(student).passed
    assert_fails(check_mask_randomness(student), "uniformly")


# --- the loss on masked tokens ---------------------------------------------------------------


def test_hand_written_loss_passes():
    def student(logits, targets, mask, label_smoothing=0.1):
        K = logits.shape[-1]
        log_p = logits[mask].log_softmax(-1)
        target = (1 - label_smoothing) * F.one_hot(targets[mask], K) + label_smoothing / K
        return -(target * log_p).sum(-1).mean()

    assert check_masked_token_loss(student).passed and check_label_smoothing(student).passed


def test_loss_in_float64_passes():
    def student(logits, targets, mask, label_smoothing=0.1):
        return F.cross_entropy(logits[mask].double(), targets[mask], label_smoothing=label_smoothing)

    assert check_masked_token_loss(student).passed and check_label_smoothing(student).passed


def test_loss_over_all_tokens():
    def student(logits, targets, mask, label_smoothing=0.1):
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), label_smoothing=label_smoothing)

    assert_fails(check_masked_token_loss(student), "ALL tokens", "copy")
    assert check_label_smoothing(student).passed  # smoothing is right: only the check that owns the mask fails


def test_zeroed_but_divided_by_all_tokens():
    def student(logits, targets, mask, label_smoothing=0.1):
        per_token = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none", label_smoothing=label_smoothing)
        return (per_token * mask).mean()

    assert_fails(check_masked_token_loss(student), "divided by all B·N")


def test_summed_instead_of_mean():
    def student(logits, targets, mask, label_smoothing=0.1):
        return F.cross_entropy(logits[mask], targets[mask], label_smoothing=label_smoothing, reduction="sum")

    assert_fails(check_masked_token_loss(student), "summed", "mean")


def test_visible_tokens_scored():
    def student(logits, targets, mask, label_smoothing=0.1):
        return F.cross_entropy(logits[~mask], targets[~mask], label_smoothing=label_smoothing)

    assert_fails(check_masked_token_loss(student), "VISIBLE")


def test_mean_per_image_first():
    def student(logits, targets, mask, label_smoothing=0.1):
        rows = [F.cross_entropy(logits[b][mask[b]], targets[b][mask[b]], label_smoothing=label_smoothing)
                for b in range(len(mask))]
        return torch.stack(rows).mean()

    assert_fails(check_masked_token_loss(student), "per image first")


def test_item_breaks_backprop():
    def student(logits, targets, mask, label_smoothing=0.1):
        return F.cross_entropy(logits[mask], targets[mask], label_smoothing=label_smoothing).item()

    assert_fails(check_masked_token_loss(student), "tensor", ".item()")


def test_detached_loss():
    def student(logits, targets, mask, label_smoothing=0.1):
        return F.cross_entropy(logits[mask], targets[mask], label_smoothing=label_smoothing).detach()

    assert_fails(check_masked_token_loss(student), "no gradient")


def test_label_smoothing_ignored():
    def student(logits, targets, mask, label_smoothing=0.1):
        return F.cross_entropy(logits[mask], targets[mask])

    assert check_masked_token_loss(student).passed  # it is right at ε = 0
    assert_fails(check_label_smoothing(student), "ignored")


def test_smoothing_over_the_wrong_classes_only():
    def student(logits, targets, mask, label_smoothing=0.1):
        K = logits.shape[-1]
        one_hot = F.one_hot(targets[mask], K)
        target = (1 - label_smoothing) * one_hot + (1 - one_hot) * label_smoothing / (K - 1)
        return -(target * logits[mask].log_softmax(-1)).sum(-1).mean()

    assert_fails(check_label_smoothing(student), "K − 1", "all K classes")


def test_student_warnings_do_not_reach_stderr(capfd):
    def student(logits, targets, mask, label_smoothing=0.1):
        warnings.warn("a warning from the student's code")
        return masked_token_loss(logits, targets, mask, label_smoothing)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_masked_token_loss(student).passed
    assert capfd.readouterr().err == ""


def test_notebook_check_cells_give_the_points_their_checks_award():
    notebook = json.loads((Path(__file__).resolve().parent.parent / "solutions" / "03_mvtm_training.ipynb").read_text())
    graded = [c for c in notebook["cells"] if c["metadata"].get("nbgrader", {}).get("grade") and c["cell_type"] == "code"]
    assert graded
    for cell in graded:
        name = re.search(r"show\((check_\w+)\(", "".join(cell["source"]))[1]
        assert cell["metadata"]["nbgrader"]["points"] == getattr(autograder.checks.mvtm, name).points, name
