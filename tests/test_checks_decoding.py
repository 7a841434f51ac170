import math
import warnings

import pytest
import torch

from autograder.checks import decoding as checks
from maskgit_lab import decoding
from maskgit_lab.schedules import SCHEDULES, gamma
from tests.conftest import TINY_TF


@pytest.mark.parametrize("schedule", ["cosine", "linear", "arccos"])
@pytest.mark.parametrize("steps", [1, 5, 8])
def test_reference_step_loop_is_iterative_decode(tiny_model, schedule, steps):
    """T calls of decoding.decode_step, as notebook 04's loop makes them (no fill_all), give exactly iterative_decode."""
    K, N = TINY_TF.num_codes, TINY_TF.num_tokens
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(K, (3, N), generator=generator)
    unknown = torch.rand(3, N, generator=generator) < torch.tensor([[0.9], [0.5], [0.1]])
    expected = iterative_decode_with_seed(tiny_model, tokens, unknown, steps, schedule)
    generator = torch.Generator().manual_seed(7)
    n0, mask = unknown.sum(1), unknown.clone()
    current = tokens.masked_fill(mask, tiny_model.mask_id)
    with torch.no_grad():
        for t in range(steps):
            current, mask = decoding.decode_step(tiny_model(current), current, mask, n0, t, steps, gamma(schedule), 4.5,
                                                 tiny_model.mask_id, generator)
    assert torch.equal(current, expected)


def iterative_decode_with_seed(model, tokens, unknown, steps, schedule):
    settings = decoding.DecodeSettings(schedule, steps, 4.5, sample_temperature=1.0)  # the loop's logits are not sharpened
    return decoding.iterative_decode(model, tokens, unknown, settings, torch.Generator().manual_seed(7))


# ---------------------------------------------------------------- buggy Gumbel noise


def gumbel_one_scalar(shape, generator=None):
    u = torch.rand(1, generator=generator).clamp(1e-20, 1 - 1e-7)
    return (-torch.log(-torch.log(u))).expand(shape)


def gumbel_one_per_row(shape, generator=None):
    u = torch.rand(shape[0], 1, generator=generator).clamp(1e-20, 1 - 1e-7)
    return (-torch.log(-torch.log(u))).expand(shape)


def gumbel_sign_flipped(shape, generator=None):
    u = torch.rand(shape, generator=generator).clamp(1e-20, 1 - 1e-7)
    return torch.log(-torch.log(u))


def gumbel_unclamped(shape, generator=None):
    return -torch.log(-torch.log(torch.rand(shape, generator=generator)))


def gumbel_ignores_generator(shape, generator=None):
    return decoding.gumbel_noise(shape)


def gumbel_is_normal(shape, generator=None):
    return torch.randn(shape, generator=generator)


def gumbel_wrong_shape(shape, generator=None):
    return decoding.gumbel_noise((shape[0],), generator)


@pytest.mark.parametrize("buggy, words", [
    (gumbel_one_scalar, "one Gumbel sample for all tokens"),
    (gumbel_one_per_row, "shared between tokens"),
    (gumbel_sign_flipped, "a sign is missing"),
    (gumbel_unclamped, "clamp u"),
    (gumbel_ignores_generator, "generator=generator"),
    (gumbel_is_normal, "not standard Gumbel"),
    (gumbel_wrong_shape, "should return shape (4, 64)"),
])
def test_gumbel_misconceptions(buggy, words):
    result = checks.check_gumbel_noise(buggy)
    assert result.points == 0 and words in result.message, result.message


def test_gumbel_check_restores_torch_rand():
    real = torch.rand
    checks.check_gumbel_noise(decoding.gumbel_noise)
    checks.check_gumbel_noise(gumbel_unclamped)
    assert torch.rand is real


# ---------------------------------------------------------------- buggy annealed temperature


@pytest.mark.parametrize("buggy, words", [
    (lambda tau, t, T: tau, "no annealing"),
    (lambda tau, t, T: tau * (1 - t / T), "off by one"),
    (lambda tau, t, T: tau * (t + 1) / T, "wrong way round"),
    (lambda tau, t, T: tau * (1 - (t + 1) / T) + 0.01, "must be exactly 0"),
    (lambda tau, t, T: tau * (1 - (t + 1) / T) ** 2, "expected τ·(1 − (t+1)/T)"),
    (lambda tau, t, T: "hot", "return one number"),
])
def test_annealing_misconceptions(buggy, words):
    result = checks.check_annealed_temperature(buggy)
    assert result.points == 0 and words in result.message, result.message


def test_annealed_temperature_may_be_a_tensor():
    result = checks.check_annealed_temperature(lambda tau, t, T: torch.tensor(tau * (1 - (t + 1) / T), dtype=torch.float64))
    assert result.passed, result.message


# ---------------------------------------------------------------- buggy masked counts


def at_least_one(n, n0, t, T):
    return torch.where(n0 > 0, n.clamp(min=1), n) if t < T - 1 else n


@pytest.mark.parametrize("buggy, words", [
    (lambda g, t, T, n0: at_least_one(torch.ceil(g((t + 1) / T) * n0.double()).long(), n0, t, T), "rounded up"),
    (lambda g, t, T, n0: at_least_one(torch.floor(g(t / T) * n0.double()).long(), n0, t, T), "(t+1)/T, not t/T"),
    (lambda g, t, T, n0: torch.floor(g((t + 1) / T) * n0.double()).long(), "at least one token masked"),
    (lambda g, t, T, n0: torch.floor(g((t + 1) / T) * n0.double()).long().clamp(min=1 if t < T - 1 else 0), "n₀ = 0"),
    (lambda g, t, T, n0: at_least_one(torch.floor((1 - g((t + 1) / T)) * n0.double()).long(), n0, t, T), "still masked"),
    (lambda g, t, T, n0: at_least_one(torch.floor(g(torch.tensor((t + 1) / T)) * n0).long(), n0, t, T), "float32"),
    (lambda g, t, T, n0: torch.floor(g((t + 1) / T) * n0.double()), "integer tensor"),
    (lambda g, t, T, n0: int(g((t + 1) / T) * 64), "as a torch.Tensor, got an int"),
    (lambda g, t, T, n0: at_least_one(torch.floor(g((t + 1) / T) * n0.double()).long(), n0, t, T)
     + (n0 > 0).long() * int(t == T - 1), "After the last step nothing may stay masked"),
])
def test_count_misconceptions(buggy, words):
    result = checks.check_masked_after_step(buggy)
    assert result.points == 0 and words in result.message, result.message


# ---------------------------------------------------------------- buggy decoding steps


def make_step(counts_from="start", overwrite=False, decided_inf=True, remask_id=True, noise="token", anneal=True,
              argmax=False, keep_last=False):
    """decoding.decode_step with one thing done wrong (see the flags)."""

    def step(logits, current, mask, n0, t, steps, schedule, temperature, mask_id, generator=None):
        B, N, K = logits.shape
        log_probs = logits.log_softmax(-1)
        if argmax:
            sampled = log_probs.argmax(-1)
        else:
            sampled = torch.multinomial(log_probs.exp().view(B * N, K), 1, generator=generator).view(B, N)
        confidence = log_probs.gather(-1, sampled[..., None])[..., 0]
        tau = decoding.annealed_temperature(temperature, t, steps) if anneal else temperature
        if noise == "token":
            confidence = confidence + tau * decoding.gumbel_noise((B, N), generator)
        elif noise == "scalar":
            confidence = confidence + tau * decoding.gumbel_noise((), generator)
        if decided_inf:
            confidence = confidence.masked_fill(~mask, math.inf)
        filled = sampled if overwrite else torch.where(mask, sampled, current)
        n = decoding.masked_after_step(schedule, t, steps, n0 if counts_from == "start" else mask.sum(1))
        if keep_last and t == steps - 1:
            n = torch.where(n0 > 0, 1, 0)
        new_mask = confidence.argsort(1).argsort(1) < n[:, None]
        return (filled.masked_fill(new_mask, mask_id) if remask_id else filled), new_mask

    return step


@pytest.mark.parametrize("check, buggy, words", [
    (checks.check_decode_step_counts, make_step(counts_from="now"), "not the ones still masked now"),
    (checks.check_decode_step_counts, make_step(keep_last=True), "no token may stay masked"),
    (checks.check_decode_step_keeps_decided, make_step(overwrite=True), "known tokens were overwritten"),
    (checks.check_decode_step_keeps_decided, make_step(decided_inf=False), "confidence +inf"),
    (checks.check_decode_step_keeps_decided, make_step(remask_id=False), "must hold mask_id again"),
    (checks.check_decode_step_noise, make_step(noise="scalar"), "one g_i per token"),
    (checks.check_decode_step_noise, make_step(noise="none"), "One noise value for all tokens (or none)"),
    (checks.check_decode_step_noise, make_step(anneal=False), "not by temperature"),
    (checks.check_decode_step_noise, make_step(argmax=True), "instead of taking the argmax"),
    (checks.check_decode_step, make_step(counts_from="now"), "not the ones still masked now"),
    (checks.check_decode_step, make_step(overwrite=True), "known tokens were overwritten"),
    (checks.check_decode_step, make_step(noise="scalar"), "per token"),
])
def test_decode_step_misconceptions(check, buggy, words, capsys):
    result = check(buggy)
    assert result.points == 0 and words in result.message, result.message
    assert capsys.readouterr().err == ""
    if check is not checks.check_decode_step:  # the notebook's other step checks do not blame another property
        for other in NOTEBOOK_STEP_CHECKS:
            assert other is check or other(buggy).passed, f"{other.__name__} failed too"


NOTEBOOK_STEP_CHECKS = [checks.check_decode_step_keeps_decided, checks.check_decode_step_counts, checks.check_decode_step_noise]


def test_correct_steps_pass_whatever_order_they_draw_in():
    """A right answer that draws noise before sampling (another random stream) still gets full marks."""

    def noise_first(logits, current, mask, n0, t, steps, schedule, temperature, mask_id, generator=None):
        B, N, K = logits.shape
        noise = decoding.gumbel_noise((B, N), generator)
        probs = logits.float().softmax(-1)
        sampled = torch.multinomial(probs.view(B * N, K), 1, generator=generator).view(B, N)
        confidence = probs.gather(-1, sampled[..., None])[..., 0].log()
        confidence = confidence + decoding.annealed_temperature(temperature, t, steps) * noise
        confidence[~mask] = math.inf
        new_mask = torch.zeros_like(mask)
        n = decoding.masked_after_step(schedule, t, steps, n0)
        for b in range(B):
            new_mask[b, confidence[b].topk(int(n[b]), largest=False).indices] = True
        tokens = torch.where(mask, sampled, current)
        tokens[new_mask] = mask_id
        return tokens, new_mask

    result = checks.check_decode_step(noise_first)
    assert result.passed, result.message


def test_wrong_return_shapes_are_named():
    result = checks.check_decode_step_keeps_decided(lambda logits, current, *rest: current)
    assert result.points == 0 and "must return two tensors" in result.message
    result = checks.check_decode_step_keeps_decided(lambda logits, current, mask, *rest: (current, mask.long()))
    assert result.points == 0 and "bool tensor" in result.message


def test_checks_survive_in_place_edits_of_the_inputs():
    def in_place(logits, current, mask, *rest):
        tokens, new_mask = decoding.decode_step(logits, current, mask, *rest)
        current.zero_()
        mask.fill_(False)
        return tokens, new_mask

    assert checks.check_decode_step(in_place).passed


def test_student_warnings_stay_off_stderr(capsys):
    def noisy(shape, generator=None):
        warnings.warn("a student's warning")
        return decoding.gumbel_noise(shape, generator)

    assert checks.check_gumbel_noise(noisy).passed
    assert capsys.readouterr().err == ""


def test_every_schedule_is_covered():
    assert {k[0] for k in checks.ALL_STEPS} == set(SCHEDULES)
    assert {k[1] for k in checks.ALL_STEPS} == set(range(1, 17))
