"""Every known misconception of notebooks 01–05 in ``autograder/checks/variants.py``, written as a student would write
it: the notebook's solution cell with one line changed. The check that owns the property names that variant, and
every other check the notebook runs on the same function passes, so the points are lost only there. Then two
mistakes in one function (two messages), and code written for another signature."""

import itertools
import json
import math
import os
import re

import nbformat
import pytest
import torch
from torch.nn import functional as F

from autograder import examples
from autograder.cells import grade_id, is_solution_cell
from autograder.checks import attention as attention_checks
from autograder.checks import decoding as decoding_checks
from autograder.checks import inpainting as inpainting_checks
from autograder.checks import mvtm as mvtm_checks
from autograder.checks import variants
from autograder.checks import vq as vq_checks
from autograder.judge import wire
from autograder.release import SOLUTIONS
from maskgit_lab import attention, decoding
from maskgit_lab.masking import random_token_mask
from maskgit_lab.schedules import SCHEDULES, gamma

CELLS = {grade_id(cell): examples.strip_markers(cell.source)
         for path in sorted(SOLUTIONS.glob("0[1-5]_*.ipynb"))
         for cell in nbformat.read(str(path), as_version=4).cells if is_solution_cell(cell)}

# The checks each notebook's test cells run on a function, in the notebook's order.
CHECKS = {
    "01_nearest_code": [vq_checks.check_nearest_code],
    "01_straight_through": [vq_checks.check_straight_through],
    "01_vq_losses": [vq_checks.check_vq_losses],
    "02_sdpa": [attention_checks.check_scaled_dot_product_attention],
    "02_split_heads": [attention_checks.check_split_heads],
    "02_merge_heads": [attention_checks.check_merge_heads],
    "02_mha": [attention_checks.check_multi_head_attention],
    "03_gamma": [mvtm_checks.check_gamma_endpoints, mvtm_checks.check_gamma_laws],
    "03_random_token_mask": [mvtm_checks.check_mask_counts, mvtm_checks.check_mask_randomness],
    "03_masked_token_loss": [mvtm_checks.check_masked_token_loss, mvtm_checks.check_label_smoothing],
    "04_gumbel_noise": [decoding_checks.check_gumbel_noise],
    "04_annealed_temperature": [decoding_checks.check_annealed_temperature],
    "04_masked_after_step": [decoding_checks.check_masked_after_step],
    "04_decode_step": [decoding_checks.check_decode_step_keeps_decided, decoding_checks.check_decode_step_counts,
                       decoding_checks.check_decode_step_noise],
    "05_token_mask": [inpainting_checks.check_token_mask_from_pixels],
    "05_paste_known": [inpainting_checks.check_paste_known],
}
ENDPOINTS, LAWS = CHECKS["03_gamma"]
MASK_COUNTS, MASK_RANDOMNESS = CHECKS["03_random_token_mask"]
LOSS, SMOOTHING = CHECKS["03_masked_token_loss"]
KEEPS, COUNTS, NOISE = CHECKS["04_decode_step"]

MSE_CODEBOOK, MSE_COMMIT = "F.mse_loss(z_q, z_e.detach())", "F.mse_loss(z_e, z_q.detach())"
VQ_SUM = "return codebook_loss + beta * commitment_loss"
SCALE = "/ math.sqrt(q.shape[-1])"
ATTEND = "out, _ = scaled_dot_product_attention(q, k, v)"
PROJECT = "return merge_heads(out) @ w_o.T"
POOL = "F.max_pool2d(unknown, kernel_size=downsample)"
CE = "F.cross_entropy(logits[mask], targets[mask], label_smoothing=label_smoothing)"
SAMPLE = "sampled = torch.multinomial(log_probs.exp().view(B * N, K), 1, generator=generator).view(B, N)"
SCORE = "confidence = log_probs.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)"
NOISE_TERM = "annealed_temperature(temperature, t, steps) * gumbel_noise((B, N), generator)"
PROTECT = 'confidence = confidence.masked_fill(~mask, float("inf"))'
COUNT = "n = masked_after_step(schedule, t, steps, n0)"
RANK = "ranks = confidence.argsort(dim=1).argsort(dim=1)"
AT_LEAST_ONE = "n = torch.where(n0 > 0, n.clamp(min=1), n)"
GAMMA_AT = "schedule((t + 1) / steps)"


def law(name: str) -> str:
    """The source of schedule ``name``'s lambda in the solution of 03_gamma."""
    return re.search(rf'"{name}": (lambda r: [^\n]*?),(\s*#[^\n]*)?\n', CELLS["03_gamma"]).group(1)


def swapped_law(other: str) -> list:
    """The edit that gives the next schedule after ``other`` the law of ``other``."""
    names = list(SCHEDULES)
    victim = names[(names.index(other) + 1) % len(names)]
    return [(f'"{victim}": {law(victim)}', f'"{victim}": {law(other)}')]


# (variant name, solution cell, (old, new) edits, the check that owns it (None: the cell's first), checks that
# fail too because they judge what the mistake also breaks)
BUGS = [
    ("farthest code", "01_nearest_code", [("distances.argmin(dim=1)", "distances.argmax(dim=1)")], None, ()),
    ("dot product", "01_nearest_code", [("return distances.argmin(dim=1)", "return (z @ codebook.t()).argmax(dim=1)")], None, ()),
    ("dot product without the codes' lengths", "01_nearest_code", [(" + codebook.pow(2).sum(1)", "")], None, ()),
    ("argmin over the vectors", "01_nearest_code", [("argmin(dim=1)", "argmin(dim=0)")], None, ()),
    ("distance table", "01_nearest_code", [("return distances.argmin(dim=1)", "return distances")], None, ()),
    ("smallest distances", "01_nearest_code", [("distances.argmin(dim=1)", "distances.min(dim=1).values")], None, ()),
    ("smallest unsquared distances", "01_nearest_code",
     [("return distances.argmin(dim=1)", "return torch.cdist(z, codebook).min(dim=1).values")], None, ()),
    ("values of z_e", "01_straight_through", [("return z_e + (z_q - z_e).detach()", "return z_e")], None, ()),
    ("no gradient at all", "01_straight_through", [("return z_e + (z_q - z_e).detach()", "return z_q.detach()")], None, ()),
    ("gradient stops at the codebook", "01_straight_through", [("(z_q - z_e).detach()", "(z_q - z_e)")], None, ()),
    ("gradient into the codebook", "01_straight_through",
     [("return z_e + (z_q - z_e).detach()", "return z_q + z_e - z_e.detach()")], None, ()),
    ("one term", "01_vq_losses", [(VQ_SUM, "return codebook_loss")], None, ()),
    ("no codebook term", "01_vq_losses", [(VQ_SUM, "return beta * commitment_loss")], None, ()),
    ("no β", "01_vq_losses", [(VQ_SUM, "return codebook_loss + commitment_loss")], None, ()),
    ("β on both terms", "01_vq_losses", [(VQ_SUM, "return beta * codebook_loss + beta * commitment_loss")], None, ()),
    ("squared differences summed", "01_vq_losses",
     [(MSE_CODEBOOK, MSE_CODEBOOK[:-1] + ', reduction="sum")'), (MSE_COMMIT, MSE_COMMIT[:-1] + ', reduction="sum")')], None, ()),
    ("nothing detached", "01_vq_losses", [(MSE_CODEBOOK, "F.mse_loss(z_q, z_e)"), (MSE_COMMIT, "F.mse_loss(z_e, z_q)")], None, ()),
    ("detaches swapped", "01_vq_losses",
     [(MSE_CODEBOOK, "F.mse_loss(z_q.detach(), z_e)"), (MSE_COMMIT, "F.mse_loss(z_e.detach(), z_q)")], None, ()),
    ("no gradient to z_e", "01_vq_losses", [(MSE_COMMIT, "F.mse_loss(z_e.detach(), z_q)")], None, ()),
    ("no gradient to z_q", "01_vq_losses", [(MSE_CODEBOOK, "F.mse_loss(z_q.detach(), z_e)")], None, ()),
    ("commitment moves the codebook", "01_vq_losses", [(MSE_COMMIT, "F.mse_loss(z_e, z_q)")], None, ()),
    ("codebook term pushes the encoder", "01_vq_losses", [(MSE_CODEBOOK, "F.mse_loss(z_q, z_e)")], None, ()),
    ("not scaled", "02_sdpa", [(" " + SCALE, "")], None, ()),
    ("divided by d", "02_sdpa", [(SCALE, "/ q.shape[-1]")], None, ()),
    ("multiplied by sqrt d", "02_sdpa", [(SCALE, "* math.sqrt(q.shape[-1])")], None, ()),
    ("softmax over the queries", "02_sdpa", [("softmax(dim=-1)", "softmax(dim=-2)")], None, ()),
    ("no softmax", "02_sdpa", [("weights = scores.softmax(dim=-1)", "weights = scores")], None, ()),
    ("weights transposed", "02_sdpa", [("return weights @ v", "return weights.transpose(-2, -1) @ v")], None, ()),
    ("split by reshape", "02_split_heads", [("x.view(B, N, num_heads, D // num_heads).transpose(1, 2)",
                                             "x.reshape(B, num_heads, N, D // num_heads)")], None, ()),
    ("heads interleaved", "02_split_heads", [("x.view(B, N, num_heads, D // num_heads).transpose(1, 2)",
                                              "x.view(B, N, D // num_heads, num_heads).permute(0, 3, 1, 2)")], None, ()),
    ("merge by reshape", "02_merge_heads", [("x.transpose(1, 2).reshape", "x.reshape")], None, ()),
    ("merge interleaved", "02_merge_heads", [("x.transpose(1, 2).reshape", "x.permute(0, 2, 3, 1).reshape")], None, ()),
    ("no output projection", "02_mha", [(PROJECT, "return merge_heads(out)")], None, ()),
    ("weights not transposed", "02_mha", [(".T", "")], None, ()),
    ("scaled by the full width", "02_mha",
     [(ATTEND, "out = (q @ k.transpose(-2, -1) / math.sqrt(x.shape[-1])).softmax(dim=-1) @ v")], None, ()),
    ("heads merged without transposing", "02_mha", [(PROJECT, "return out.reshape(x.shape) @ w_o.T")], None, ()),
    ("a single head", "02_mha", [(".T, num_heads)", ".T, 1)")], None, ()),
    ("schedule rises from 0 to 1", "03_gamma", [("return laws[name]", "return lambda r: 1 - laws[name](r)")], ENDPOINTS, (LAWS,)),
    ("fraction revealed", "03_gamma", [("return laws[name]", "return lambda r: 1 - laws[name](r)")], LAWS, (ENDPOINTS,)),
    ("arccos starts at π/2", "03_gamma", [("torch.arccos(r) / (math.pi / 2)", "torch.arccos(r)")], ENDPOINTS, (LAWS,)),
    ("cosine ends at −1", "03_gamma", [("torch.cos(r * math.pi / 2)", "torch.cos(r * math.pi)")], ENDPOINTS, (LAWS,)),
    *[(f"the {other} law", "03_gamma", swapped_law(other), LAWS, ()) for other in SCHEDULES],
    ("(1 − r)²", "03_gamma", [("1 - r**2", "(1 - r) ** 2")], LAWS, ()),
    ("(1 − r)³", "03_gamma", [("1 - r**3", "(1 - r) ** 3")], LAWS, ()),
    ("√(1 − r)", "03_gamma", [("1 - torch.sqrt(r)", "torch.sqrt(1 - r)")], LAWS, ()),
    ("cos(π·r)", "03_gamma", [("torch.cos(r * math.pi / 2)", "torch.cos(r * math.pi)")], LAWS, (ENDPOINTS,)),
    ("arccos not normalised", "03_gamma", [("torch.arccos(r) / (math.pi / 2)", "torch.arccos(r)")], LAWS, (ENDPOINTS,)),
    ("kept tokens marked True", "03_random_token_mask", [("return ranks < counts", "return ranks >= counts")], None, ()),
    ("ratio read as the fraction kept", "03_random_token_mask",
     [("torch.floor(ratio * num_tokens)", "torch.floor((1 - ratio) * num_tokens)")], None, ()),
    ("one ratio for every row", "03_random_token_mask",
     [("torch.as_tensor(ratio, dtype=torch.float64)", "torch.as_tensor(ratio, dtype=torch.float64).flatten()[0]")], None, ()),
    ("mask ratio rounded up", "03_random_token_mask", [("torch.floor(", "torch.ceil(")], None, ()),
    ("mask ratio rounded to nearest", "03_random_token_mask", [("torch.floor(", "torch.round(")], None, ()),
    ("no token masked for a small ratio", "03_random_token_mask", [("clamp(min=1, ", "clamp(min=0, ")], None, ()),
    ("coin flip per token", "03_random_token_mask",
     [("return ranks < counts.unsqueeze(1)", "return torch.rand(batch_size, num_tokens, generator=generator) < ratio.unsqueeze(1)")],
     None, ()),
    ("ratio drawn inside", "03_random_token_mask",
     [("ratio = torch.as_tensor(ratio, dtype=torch.float64).expand(batch_size)",
       "ratio = torch.rand(batch_size, generator=generator, dtype=torch.float64)")], None, ()),
    ("all tokens", "03_masked_token_loss",
     [(CE, "F.cross_entropy(logits.flatten(0, 1), targets.flatten(), label_smoothing=label_smoothing)")], None, ()),
    ("divided by all tokens", "03_masked_token_loss",
     [(CE, "(F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction='none', label_smoothing=label_smoothing)"
           " * mask.flatten()).sum() / mask.numel()")], None, ()),
    ("masked losses summed", "03_masked_token_loss", [(CE, CE[:-1] + ', reduction="sum")')], None, (SMOOTHING,)),
    ("visible tokens", "03_masked_token_loss", [("[mask]", "[~mask]")], None, (SMOOTHING,)),
    ("mean per image", "03_masked_token_loss",
     [(CE, "torch.stack([F.cross_entropy(logits[b][mask[b]], targets[b][mask[b]], label_smoothing=label_smoothing) "
           "for b in range(len(mask))]).mean()")], None, ()),
    ("smoothing ignored", "03_masked_token_loss", [("label_smoothing=label_smoothing)", "label_smoothing=0.0)")], SMOOTHING, ()),
    ("smoothing over the others", "03_masked_token_loss",
     [(CE, "-((F.one_hot(targets[mask], logits.shape[-1]) * (1 - label_smoothing) + (1 - F.one_hot(targets[mask], "
           "logits.shape[-1])) * label_smoothing / (logits.shape[-1] - 1)) * logits[mask].log_softmax(-1)).sum(-1).mean()")],
     SMOOTHING, ()),
    ("one Gumbel sample for all tokens", "04_gumbel_noise", [("torch.rand(shape,", "torch.rand((),"),
     ("return -torch.log(-torch.log(u))", "return -torch.log(-torch.log(u)) * torch.ones(shape)")], None, ()),
    ("no annealing", "04_annealed_temperature", [("temperature * (1 - (t + 1) / steps)", "temperature")], None, ()),
    ("annealing off by one", "04_annealed_temperature", [("(t + 1) / steps", "t / steps")], None, ()),
    ("annealing reversed", "04_annealed_temperature",
     [("temperature * (1 - (t + 1) / steps)", "temperature * (t + 1) / steps")], None, ()),
    ("counts rounded up", "04_masked_after_step", [("torch.floor(", "torch.ceil(")], None, ()),
    ("counts rounded to nearest", "04_masked_after_step", [("torch.floor(", "torch.round(")], None, ()),
    ("counts off by one", "04_masked_after_step", [(GAMMA_AT, "schedule(t / steps)")], None, ()),
    ("counts drop to 0", "04_masked_after_step", [(AT_LEAST_ONE, "pass")], None, ()),
    ("at least one also where n0 = 0", "04_masked_after_step", [(AT_LEAST_ONE, "n = n.clamp(min=1)")], None, ()),
    ("1 - gamma", "04_masked_after_step", [(GAMMA_AT, f"(1 - {GAMMA_AT})")], None, ()),
    ("counts ignore the schedule", "04_masked_after_step", [(GAMMA_AT, "(1 - (t + 1) / steps)")], None, ()),
    ("counts in float32", "04_masked_after_step",
     [(f"{GAMMA_AT} * n0.double()", "schedule(torch.tensor((t + 1) / steps)) * n0")], None, ()),
    ("counts from the current mask", "04_decode_step", [(COUNT, "n = masked_after_step(schedule, t, steps, mask.sum(dim=1))")],
     COUNTS, ()),
    ("counts of all tokens", "04_decode_step", [(COUNT, "n = masked_after_step(schedule, t, steps, torch.full_like(n0, N))")],
     COUNTS, ()),
    ("counts of decoded tokens", "04_decode_step", [(COUNT, "n = n0 - masked_after_step(schedule, t, steps, n0)")], COUNTS, ()),
    ("sample argmax", "04_decode_step", [(SAMPLE, "sampled = log_probs.argmax(dim=-1)")], NOISE, ()),
    ("no per-token noise", "04_decode_step", [(NOISE_TERM, "0")], NOISE, ()),
    ("no per-token noise", "04_decode_step", [("gumbel_noise((B, N), generator)", "gumbel_noise((1,), generator)")], NOISE, ()),
    ("no per-token noise", "04_decode_step", [("gumbel_noise((B, N), generator)", "gumbel_noise((B, 1), generator)")], NOISE, ()),
    ("confidence is p", "04_decode_step",
     [(SCORE, "confidence = log_probs.exp().gather(-1, sampled.unsqueeze(-1)).squeeze(-1)")], NOISE, ()),
    ("confidence of the argmax", "04_decode_step", [(SCORE, "confidence = log_probs.max(dim=-1).values")], NOISE, ()),
    ("confidence is the logit", "04_decode_step",
     [(SCORE, "confidence = logits.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)")], NOISE, ()),
    ("noise not annealed", "04_decode_step", [(NOISE_TERM, "temperature * gumbel_noise((B, N), generator)")], NOISE, ()),
    ("noise annealed the wrong way", "04_decode_step",
     [(NOISE_TERM, "temperature * (t + 1) / steps * gumbel_noise((B, N), generator)")], NOISE, ()),
    ("noise grows from 0", "04_decode_step", [(NOISE_TERM, "temperature * t / steps * gumbel_noise((B, N), generator)")],
     NOISE, ()),
    ("noise annealed off by one", "04_decode_step",
     [(NOISE_TERM, "temperature * (1 - t / steps) * gumbel_noise((B, N), generator)")], NOISE, ()),
    ("noise follows the schedule", "04_decode_step",
     [(NOISE_TERM, f"temperature * {GAMMA_AT} * gumbel_noise((B, N), generator)")], NOISE, ()),
    ("noise follows 1 - gamma", "04_decode_step",
     [(NOISE_TERM, f"temperature * (1 - {GAMMA_AT}) * gumbel_noise((B, N), generator)")], NOISE, ()),
    ("most confident re-masked", "04_decode_step",
     [(RANK, "ranks = confidence.argsort(dim=1, descending=True).argsort(dim=1)")], NOISE, ()),
    ("decided tokens compete", "04_decode_step", [(PROTECT, "pass")], KEEPS, ()),
    ("decided tokens get -inf", "04_decode_step", [(PROTECT, PROTECT.replace('"inf"', '"-inf"'))], KEEPS, ()),
    ("known tokens marked", "05_token_mask", [("return patches", "return ~patches")], None, ()),
    ("all pixels unknown", "05_token_mask", [(POOL, "-F.max_pool2d(-unknown, kernel_size=downsample)")], None, ()),
    ("most pixels unknown", "05_token_mask", [(POOL, "(F.avg_pool2d(unknown, kernel_size=downsample) > 0.5).float()")], None, ()),
    ("grid transposed", "05_token_mask", [("patches.flatten(1)", "patches.transpose(2, 3).flatten(1)")], None, ()),
    ("pasted the wrong way round", "05_paste_known", [("original, generated)", "generated, original)")], None, ()),
    ("generated unchanged", "05_paste_known", [("return torch.where(known.unsqueeze(1), original, generated)",
                                                "return generated")], None, ()),
    ("original returned", "05_paste_known", [("return torch.where(known.unsqueeze(1), original, generated)",
                                              "return original")], None, ()),
]
OWNED = variants.registry(vars(vq_checks)) + variants.registry(vars(attention_checks)) + variants.registry(vars(mvtm_checks)) \
    + variants.registry(vars(decoding_checks)) + variants.registry(vars(inpainting_checks))
BY_NAME = {v.name: v for v in variants.registry()}


def words(name: str) -> str:
    """The words of variant ``name`` as the student reads them (notebook 02's attention check fills in d_head = 4)."""
    return BY_NAME[name].words.format(d=4, root=2.0)


def answer(cell: str, edits=()):
    """The solution cell with ``edits`` applied, run with the notebook's names; returns the function it defines."""
    source = CELLS[cell]
    for old, new in edits:
        assert old in source, f"{old!r} is no longer in the solution of {cell}"
        source = source.replace(old, new)
    namespace = {"torch": torch, "math": math, "F": F, "gumbel_noise": decoding.gumbel_noise,
                 "annealed_temperature": decoding.annealed_temperature, "masked_after_step": decoding.masked_after_step,
                 "split_heads": attention.split_heads, "merge_heads": attention.merge_heads,
                 "scaled_dot_product_attention": attention.scaled_dot_product_attention}
    exec(compile(source, f"<{cell}>", "exec"), namespace)
    return namespace[re.search(r"def (\w+)\(", source).group(1)]


def test_every_variant_of_notebooks_01_to_05_has_a_buggy_answer():
    assert len({v.name for v in variants.registry()}) == len(variants.registry()), "variant names must be unique"
    assert {name for name, *_ in BUGS} == {v.name for v in OWNED}


@pytest.mark.parametrize("cell", sorted(CHECKS))
def test_the_solution_cells_pass_every_check(cell):
    for check in CHECKS[cell]:
        result = check(answer(cell))
        assert result.passed, result


@pytest.mark.parametrize("name, cell, edits, owner, also", BUGS, ids=[f"{b[0]}-{i}" for i, b in enumerate(BUGS)])
def test_the_owner_names_the_variant_and_no_other_check_fails(name, cell, edits, owner, also, capfd):
    student = answer(cell, edits)
    owner = owner or CHECKS[cell][0]
    for check in CHECKS[cell]:
        result = check(student)
        if check is owner:
            assert result.points == 0 and words(name) in result.message, result
            # by name as data; two variants that compute the same thing share their words, and the first is named
            assert [words(n) for n in result.misconceptions] == [words(name)], result
        elif check not in also:
            assert result.passed, f"{name} must not fail {result.check}: {result.message}"
    assert capfd.readouterr().err == ""


# Two mistakes in one function: each is named on its own.
TWO_BUGS = [
    ("04_masked_after_step", [("torch.floor(", "torch.ceil("), (GAMMA_AT, f"(1 - {GAMMA_AT})")], None,
     ["counts rounded up", "1 - gamma"]),
    ("04_masked_after_step", [("torch.floor(", "torch.ceil("), (f"{GAMMA_AT} * n0.double()", "schedule(torch.tensor((t + 1) / steps)) * n0")],
     None, ["counts in float32", "counts rounded up"]),
    ("04_masked_after_step", [("torch.floor(", "torch.round("), (AT_LEAST_ONE, "pass")], None,
     ["counts rounded to nearest", "counts drop to 0"]),
    ("04_decode_step", [(SCORE, "confidence = log_probs.exp().gather(-1, sampled.unsqueeze(-1)).squeeze(-1)"),
                        (NOISE_TERM, "temperature * gumbel_noise((B, N), generator)")], NOISE,
     ["confidence is p", "noise not annealed"]),
    ("03_random_token_mask", [("torch.floor(", "torch.ceil("),
                              ("torch.as_tensor(ratio, dtype=torch.float64)", "torch.as_tensor(ratio, dtype=torch.float64).flatten()[0]")],
     None, ["one ratio for every row", "mask ratio rounded up"]),
    ("02_sdpa", [(" " + SCALE, ""), ("softmax(dim=-1)", "softmax(dim=-2)")], None, ["not scaled", "softmax over the queries"]),
    ("02_mha", [(PROJECT, "return merge_heads(out)"), (".T", "")], None, ["no output projection", "weights not transposed"]),
]


@pytest.mark.parametrize("cell, edits, owner, names", TWO_BUGS, ids=["+".join(b[3]) for b in TWO_BUGS])
def test_two_mistakes_in_one_function_give_two_named_messages(cell, edits, owner, names):
    result = (owner or CHECKS[cell][0])(answer(cell, edits))
    assert result.points == 0, result
    for name in names:
        assert words(name) in result.message, f"{name} not named: {result.message}"
    assert sorted(map(words, result.misconceptions)) == sorted(map(words, names)), result


def gamma_func(self, mode):  # the original skeleton's method, pasted as it was
    return lambda r: torch.cos(r * math.pi / 2)


def gamma_with_default(self, mode="cosine"):  # binds gamma("linear") to self, and would pass for the cosine law
    return gamma(mode)


def forward(self, x):  # a module's forward
    return x


def annealed_in_another_order(t, steps, temperature):
    return temperature * (1 - (t + 1) / steps)


@pytest.mark.parametrize("check, fn, expected", [
    (ENDPOINTS, gamma_func, "gamma(name)"),
    (LAWS, gamma_with_default, "gamma(name)"),
    (attention_checks.check_multi_head_attention, forward, "multi_head_attention(x, w_q, w_k, w_v, w_o, num_heads)"),
    (decoding_checks.check_annealed_temperature, annealed_in_another_order, "annealed_temperature(temperature, t, steps)"),
    (KEEPS, lambda logits, current, mask, n0, t, steps: current, "decode_step(logits, current, mask, n0, t, steps,"),
    (MASK_COUNTS, lambda batch_size, num_tokens, ratio: None, "random_token_mask(batch_size, num_tokens, ratio, generator=None)"),
])
def test_another_signature_is_named_not_a_type_error(check, fn, expected):
    result = check(fn)
    assert result.points == 0 and f"signature mismatch: expected {expected}" in result.message, result.message
    assert "TypeError" not in result.message


def test_the_signature_crosses_the_wire_so_the_judge_sees_it_too():
    read_fd, write_fd = os.pipe()
    end = wire.Endpoint(read_fd, write_fd)
    stand_in = end.decode(json.loads(json.dumps(end.encode(gamma_func))))
    result = ENDPOINTS(stand_in)  # refused before the stand-in is ever called
    assert result.points == 0 and "signature mismatch: expected gamma(name), got gamma_func(self, mode)" in result.message


def test_the_step_variants_are_told_apart_by_what_they_re_mask():
    right = {prop: way for prop, (way, _) in variants.STEP.items()}
    signatures = {"reference": decoding_checks._step_signature(decoding.decode_step)}
    signatures.update({v.name: decoding_checks._known_signature(tuple({**right, prop: v.wrong}.items()))
                       for prop, (_, wrongs) in variants.STEP.items() for v in wrongs})
    assert signatures["reference"] == decoding_checks._known_signature(tuple(right.items()))
    for (a, x), (b, y) in itertools.combinations(signatures.items(), 2):
        assert not decoding_checks._alike(x, y), f"{a} and {b} look alike"


def test_the_mask_variants_are_told_apart():
    right = {prop: way for prop, (way, _) in variants.MASK_COUNTS.items()}
    masks = [random_token_mask] + [v.wrong for v in variants.MASK_DRAWS]
    masks += [variants.ranked_mask({**right, prop: v.wrong}) for prop, (_, wrongs) in variants.MASK_COUNTS.items() for v in wrongs]
    signatures = [mvtm_checks._count_signature(fn) for fn in masks]
    assert len(set(map(repr, signatures))) == len(signatures)


def test_the_count_variants_are_told_apart():
    right = {prop: way for prop, (way, _) in variants.COUNTS.items()}
    counts = [decoding.masked_after_step] + [variants.counted({**right, prop: v.wrong})
                                             for prop, (_, wrongs) in variants.COUNTS.items() for v in wrongs]
    runs = [(name, T, t) for name in SCHEDULES for T in range(1, 17) for t in range(T)]
    traces = [tuple(tuple(count(gamma(name), t, T, decoding_checks.N0).tolist()) for name, T, t in runs) for count in counts]
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
