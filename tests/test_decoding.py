import math

import pytest
import torch

from maskgit_lab.decoding import (
    GENERATION,
    DecodeHistory,
    DecodeSettings,
    annealed_temperature,
    decode_step,
    guided,
    guided_logits,
    gumbel_noise,
    iterative_decode,
    masked_after_step,
)
from maskgit_lab.schedules import SCHEDULES, gamma
from tests.conftest import TINY_TF

N, K = TINY_TF.num_tokens, TINY_TF.num_codes


def make_inputs(B=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(K, (B, N), generator=generator)
    token_mask = torch.zeros(B, N, dtype=torch.bool)
    for b, unknown in enumerate([N, 40, 17, 1][:B]):  # different n₀ per image
        token_mask[b, torch.randperm(N, generator=generator)[:unknown]] = True
    return tokens, token_mask


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("steps", [1, 4, 8, 12])
def test_counts_follow_the_schedule_from_the_initial_unknowns(tiny_model, schedule, steps):
    tokens, token_mask = make_inputs()
    n0 = token_mask.sum(1)
    out, history = iterative_decode(tiny_model, tokens, token_mask, DecodeSettings(schedule, steps), return_history=True,
                                    generator=torch.Generator().manual_seed(0))
    assert len(history.masks) == steps
    g = gamma(schedule)
    for t, mask in enumerate(history.masks):
        expected = [math.floor(g((t + 1) / steps) * n) for n in n0.tolist()]
        if t < steps - 1:
            expected = [max(1, e) for e in expected]
        assert mask.sum(1).tolist() == expected, f"step {t}"
        assert not (mask & ~token_mask).any(), "a known token was re-masked"
        if t:
            assert not (mask & ~history.masks[t - 1]).any(), "a decoded token was masked again"
    assert history.masks[-1].sum() == 0
    assert (out < K).all() and (out >= 0).all()


def test_known_and_decoded_tokens_never_change(tiny_model):
    tokens, token_mask = make_inputs()
    out, history = iterative_decode(tiny_model, tokens, token_mask, DecodeSettings(steps=6), return_history=True)
    assert torch.equal(out[~token_mask], tokens[~token_mask])
    for t in range(1, 6):
        decoded_before = ~history.masks[t - 1]
        assert torch.equal(history.tokens[t][decoded_before], history.tokens[t - 1][decoded_before])
    assert torch.equal(history.tokens[-1], out)


def test_masked_positions_hold_the_mask_id_in_history(tiny_model):
    tokens, token_mask = make_inputs()
    _, history = iterative_decode(tiny_model, tokens, token_mask, DecodeSettings(steps=4), return_history=True)
    for tok, mask in zip(history.tokens, history.masks):
        assert ((tok == tiny_model.mask_id) == mask).all()


def test_seeded_runs_repeat_and_different_seeds_differ(tiny_model):
    tokens, token_mask = make_inputs()
    run = lambda seed: iterative_decode(tiny_model, tokens, token_mask, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_sweet_spot_stops_early_and_fills_everything(tiny_model):
    tokens, token_mask = make_inputs()
    out, history = iterative_decode(tiny_model, tokens, token_mask, DecodeSettings(steps=10, sweet_spot=3), return_history=True)
    assert len(history.masks) == 3
    assert history.masks[-1].sum() == 0 and (out < K).all()
    assert torch.equal(out[~token_mask], tokens[~token_mask])


def test_nothing_unknown_returns_the_input(tiny_model):
    tokens, _ = make_inputs()
    out = iterative_decode(tiny_model, tokens, torch.zeros_like(tokens, dtype=torch.bool), DecodeSettings(steps=5))
    assert torch.equal(out, tokens)


def test_the_default_setting_and_its_labels():
    default = DecodeSettings()
    # the measured best for inpainting (README, "The default decode setting"), not MaskGIT's τ = 4.5, s = 1
    assert (default.schedule, default.steps, default.temperature, default.sweet_spot, default.sample_temperature,
            default.retokenize, default.blur) == ("cosine", 8, 1.0, None, 0.3, 5, 0.5)
    assert default.label == "cosine T=8 retok×5 blur 0.5"
    assert DecodeSettings("cubic", 12, sweet_spot=4, retokenize=0, blur=0).label == "cubic T=12 stop@4"
    assert DecodeSettings(retokenize=3, blur=0).label == "cosine T=8 retok×3"
    assert DecodeSettings(retokenize=0, blur=1).label == "cosine T=8 blur 1"


def test_the_step_is_an_argument(tiny_model):
    tokens, token_mask = make_inputs()
    calls = []

    def counting_step(*args, **kwargs):
        calls.append(kwargs["fill_all"])
        return decode_step(*args, **kwargs)

    out = iterative_decode(tiny_model, tokens, token_mask, DecodeSettings(steps=5, sweet_spot=3), torch.Generator().manual_seed(4),
                           step=counting_step)
    assert calls == [False, False, True]  # the last step taken fills everything
    settings = DecodeSettings(steps=5, sweet_spot=3)
    expected = iterative_decode(tiny_model, tokens, token_mask, settings, torch.Generator().manual_seed(4))
    assert torch.equal(out, expected)


def test_noise_is_annealed_to_zero_and_drawn_per_token():
    assert annealed_temperature(4.5, 0, 8) == pytest.approx(4.5 * 7 / 8)
    assert annealed_temperature(4.5, 7, 8) == 0
    noise = gumbel_noise((1000,), torch.Generator().manual_seed(0))
    assert noise.unique().numel() == 1000
    assert noise.mean().item() == pytest.approx(0.5772, abs=0.1)  # Euler–Mascheroni constant


def test_masked_after_step_keeps_one_until_the_end():
    n0 = torch.tensor([0, 1, 64])
    cosine = gamma("cosine")
    assert masked_after_step(cosine, 6, 8, n0).tolist() == [0, 1, max(1, math.floor(math.cos(7 / 8 * math.pi / 2) * 64))]
    assert masked_after_step(cosine, 7, 8, n0).tolist() == [0, 0, 0]


def test_without_noise_the_most_confident_tokens_are_kept():
    class Fixed(torch.nn.Module):
        """First half: 15 codes equally likely (log p = −log 15). Second half: code 0 for sure."""
        mask_id = K

        def forward(self, tokens):
            B, n = tokens.shape
            logits = torch.zeros(B, n, K)
            logits[:, : n // 2, 1:] = 30.0
            logits[:, n // 2 :, 1:] = -30.0
            return logits

    tokens = torch.zeros(1, N, dtype=torch.long)
    token_mask = torch.ones(1, N, dtype=torch.bool)
    _, history = iterative_decode(Fixed(), tokens, token_mask, DecodeSettings("linear", 2, temperature=0.0), return_history=True,
                                  generator=torch.Generator().manual_seed(0))
    # after step 1 of 2 (linear), half stay masked: the least confident half, the first one
    assert history.masks[0][0, : N // 2].all() and not history.masks[0][0, N // 2 :].any()


@pytest.mark.parametrize("steps", [0, -3, 2.5])
def test_bad_step_count_is_refused(tiny_model, steps):
    tokens, token_mask = make_inputs()
    with pytest.raises(ValueError, match=r"steps \(T\) must be an integer ≥ 1"):
        iterative_decode(tiny_model, tokens, token_mask, DecodeSettings(steps=steps))


def test_bad_inputs_are_refused(tiny_model):
    tokens, token_mask = make_inputs()
    with pytest.raises(ValueError, match="must both be"):
        iterative_decode(tiny_model, tokens, token_mask[:, :10], DecodeSettings(steps=4))
    with pytest.raises(TypeError, match="must be bool"):
        iterative_decode(tiny_model, tokens, token_mask.long(), DecodeSettings(steps=4))
    with pytest.raises(ValueError, match="unknown mask schedule"):
        iterative_decode(tiny_model, tokens, token_mask, DecodeSettings("exp", 4))
    with pytest.raises(ValueError, match="sweet_spot must be between 1 and steps=4"):
        iterative_decode(tiny_model, tokens, token_mask, DecodeSettings(steps=4, sweet_spot=5))
    with pytest.raises(ValueError, match="temperature must be ≥ 0"):
        iterative_decode(tiny_model, tokens, token_mask, DecodeSettings(steps=4, temperature=-1))
    with pytest.raises(TypeError, match="settings must be a DecodeSettings"):
        iterative_decode(tiny_model, tokens, token_mask, 4)


@pytest.mark.parametrize("value", [0.0, -0.5, float("nan"), float("inf")])
def test_a_bad_sample_temperature_is_refused(value):
    with pytest.raises(ValueError, match=r"sample_temperature must be a finite number > 0 \(1 samples the model's own"):
        DecodeSettings(sample_temperature=value)


@pytest.mark.parametrize("value", [0.0, -0.5, float("nan"), float("inf"), True, "1"])
def test_a_bad_first_sample_temperature_is_refused(value):
    with pytest.raises(ValueError, match=r"first_sample_temperature must be a finite number > 0 \(the first step's s"):
        DecodeSettings(first_sample_temperature=value)


def test_the_sample_temperature_falls_linearly_from_the_first_step_to_the_last():
    falling = DecodeSettings(steps=5, sample_temperature=0.5, first_sample_temperature=1.0)
    assert [falling.sample_temperature_at(t) for t in range(5)] == [1.0, 0.875, 0.75, 0.625, 0.5]
    assert DecodeSettings(steps=1, sample_temperature=0.5, first_sample_temperature=1.0).sample_temperature_at(0) == 1.0
    assert [DecodeSettings(steps=3, sample_temperature=0.4).sample_temperature_at(t) for t in range(3)] == [0.4] * 3
    assert (falling.sampling, DecodeSettings(sample_temperature=0.4).sampling) == ("1→0.5", "0.4")


@pytest.mark.parametrize("value", [-1, 1.5, True, "2"])
def test_a_bad_retokenize_count_is_refused(value):
    with pytest.raises(ValueError, match=r"retokenize must be an integer ≥ 0 \(0 keeps the first decoded image\)"):
        DecodeSettings(retokenize=value)


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), True, "0.5"])
def test_a_bad_blur_is_refused(value):
    with pytest.raises(ValueError, match=r"blur must be a finite number ≥ 0 \(σ in pixels; 0 leaves the fill sharp\)"):
        DecodeSettings(blur=value)


class Scaled(torch.nn.Module):
    """The model with its logits multiplied by ``factor``."""

    def __init__(self, model, factor):
        super().__init__()
        self.model, self.factor, self.mask_id = model, factor, model.mask_id

    def forward(self, tokens):
        return self.model(tokens) * self.factor


@pytest.mark.parametrize("sample_temperature", [0.5, 2.0])
def test_the_sample_temperature_divides_the_logits_before_each_step(tiny_model, sample_temperature):
    tokens, token_mask = make_inputs()
    before, after = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    expected, _ = iterative_decode_before_decode_step(Scaled(tiny_model, 1 / sample_temperature), tokens, token_mask, 8,
                                                      "cosine", 1.0, before, None)
    settings = DecodeSettings("cosine", 8, 1.0, sample_temperature=sample_temperature)
    assert torch.equal(iterative_decode(tiny_model, tokens, token_mask, settings, after), expected)


class StepScaled(torch.nn.Module):
    """The model with the logits of its t-th call (0-based) divided by ``temperatures[t]``."""

    def __init__(self, model, temperatures):
        super().__init__()
        self.model, self.temperatures, self.mask_id, self.calls = model, temperatures, model.mask_id, 0

    def forward(self, tokens):
        self.calls += 1
        return self.model(tokens) / self.temperatures[self.calls - 1]


@pytest.mark.parametrize("steps, sweet_spot", [(6, None), (6, 3), (1, None)])
def test_a_falling_sample_temperature_divides_each_steps_logits_by_its_own_s(tiny_model, steps, sweet_spot):
    tokens, token_mask = make_inputs()
    settings = DecodeSettings("cosine", steps, 1.0, sweet_spot, sample_temperature=0.4, first_sample_temperature=2.0)
    expected_s = [2.0 + (0.4 - 2.0) * t / (steps - 1) for t in range(steps)] if steps > 1 else [2.0]
    before, after = torch.Generator().manual_seed(8), torch.Generator().manual_seed(8)
    expected, _ = iterative_decode_before_decode_step(StepScaled(tiny_model, expected_s), tokens, token_mask, steps,
                                                      "cosine", 1.0, before, sweet_spot)
    assert torch.equal(iterative_decode(tiny_model, tokens, token_mask, settings, after), expected)


def test_a_tiny_sample_temperature_takes_the_most_likely_code(tiny_model):
    tokens, token_mask = make_inputs()
    settings = DecodeSettings("cosine", 1, 0.0, sample_temperature=1e-4)  # T = 1: every token from the same logits
    out = iterative_decode(tiny_model, tokens, token_mask, settings, torch.Generator().manual_seed(6))
    with torch.no_grad():
        tiny_model.eval()
        argmax = tiny_model(tokens.masked_fill(token_mask, tiny_model.mask_id)).argmax(-1)
    assert torch.equal(out[token_mask], argmax[token_mask]) and torch.equal(out[~token_mask], tokens[~token_mask])


# ---------------------------------------------------------------- decode_step, the body of the loop


@torch.no_grad()
def iterative_decode_before_decode_step(model, tokens, token_mask, steps, schedule, temperature, generator, sweet_spot):
    """FROZEN: ``iterative_decode``'s loop as it was before ``decode_step`` was factored out (commit 0d10dc6).

    Copied verbatim (less input checks and the train/eval restore); do not edit. It is the record that the
    refactor changed no operation, no random draw and no device move.
    """
    gamma_fn = gamma(schedule)
    model.eval()
    device = tokens.device
    B, N = tokens.shape
    mask = token_mask.clone()
    n0 = mask.sum(dim=1).cpu()  # (B,) unknowns at the start: every count derives from these
    current = tokens.masked_fill(mask, model.mask_id)
    history = DecodeHistory()
    last_step = steps if sweet_spot is None else sweet_spot
    for t in range(last_step):
        logits = model(current).float()  # (B, N, K)
        log_probs = logits.log_softmax(dim=-1).cpu()
        sampled = torch.multinomial(log_probs.exp().view(B * N, -1), 1, generator=generator).view(B, N)
        confidence = log_probs.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)  # (B, N) log p(sample)
        confidence = confidence + annealed_temperature(temperature, t, steps) * gumbel_noise((B, N), generator)
        # Only tokens masked right now compete; known and already decoded ones never return.
        confidence = confidence.masked_fill(~mask.cpu(), float("inf"))
        filled = torch.where(mask, sampled.to(device), current)
        if t == last_step - 1:
            n_masked = torch.zeros_like(n0)  # the last step (or the sweet spot) fills everything
        else:
            n_masked = masked_after_step(gamma_fn, t, steps, n0)
        ranks = confidence.argsort(dim=1).argsort(dim=1)  # (B, N), 0 = least confident
        mask = (ranks < n_masked.unsqueeze(1)).to(device)
        current = filled.masked_fill(mask, model.mask_id)
        history.tokens.append(current.clone())
        history.masks.append(mask.clone())
        history.num_masked.append(mask.sum(dim=1).cpu())
    return current, history


DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(),
                                                                                  reason="needs CUDA")])]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("steps, sweet_spot, temperature", [
    (1, None, 4.5), (1, 1, 4.5), (2, None, 4.5), (5, None, 0.0), (5, 2, 4.5), (8, None, 4.5),
    (8, 1, 4.5), (8, 5, 10.0), (8, 8, 4.5), (12, None, 1.0), (12, 7, 4.5), (16, 15, 4.5),
])
def test_iterative_decode_is_bit_identical_to_the_loop_before_decode_step(tiny_model, device, schedule, steps, sweet_spot,
                                                                          temperature):
    tokens, token_mask = make_inputs()
    tokens = torch.cat([tokens, tokens[:1]]).to(device)  # a fifth image with nothing unknown (n₀ = 0)
    token_mask = torch.cat([token_mask, torch.zeros_like(token_mask[:1])]).to(device)
    model = tiny_model.to(device)
    before, after = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    expected, expected_history = iterative_decode_before_decode_step(model, tokens, token_mask, steps, schedule, temperature,
                                                                     before, sweet_spot)
    settings = DecodeSettings(schedule, steps, temperature, sweet_spot, sample_temperature=1.0)  # MaskGIT's sampling
    out, history = iterative_decode(model, tokens, token_mask, settings, after, return_history=True)
    assert out.device == expected.device and out.dtype == expected.dtype and torch.equal(out, expected)
    for name in ("tokens", "masks", "num_masked"):
        ours, theirs = getattr(history, name), getattr(expected_history, name)
        assert len(ours) == len(theirs) == (sweet_spot or steps)
        for a, b in zip(ours, theirs):
            assert a.device == b.device and a.dtype == b.dtype and torch.equal(a, b), f"history.{name} differs"
    assert torch.equal(after.get_state(), before.get_state()), "a different number of random draws"


def test_decode_step_counts_and_fill_all(tiny_model):
    tokens, token_mask = make_inputs()
    n0, steps, schedule = token_mask.sum(1), 8, gamma("cosine")
    current = tokens.masked_fill(token_mask, tiny_model.mask_id)
    logits = tiny_model(current)
    out, mask = decode_step(logits, current, token_mask, n0, 0, steps, schedule, 4.5, tiny_model.mask_id,
                            torch.Generator().manual_seed(0))
    assert mask.sum(1).tolist() == masked_after_step(schedule, 0, steps, n0).tolist()
    assert not (mask & ~token_mask).any() and torch.equal(out[~token_mask], tokens[~token_mask])
    assert ((out == tiny_model.mask_id) == mask).all()
    out, mask = decode_step(logits, current, token_mask, n0, 0, steps, schedule, 4.5, tiny_model.mask_id,
                            torch.Generator().manual_seed(0), fill_all=True)
    assert not mask.any() and (out < K).all()  # the sweet spot: everything filled at step 1 of 8
    assert torch.equal(out[~token_mask], tokens[~token_mask])


# --- classifier-free guidance ---------------------------------------------------------------


def test_guided_logits_move_from_the_unconditional_to_past_the_conditional():
    cond, uncond = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    torch.testing.assert_close(guided(cond, uncond, 0.0), uncond)
    torch.testing.assert_close(guided(cond, uncond, 1.0), cond)
    torch.testing.assert_close(guided(cond, uncond, 3.0), uncond + 3.0 * (cond - uncond))


class Counting(torch.nn.Module):
    """A model wrapper that records the rows and labels of every forward pass."""

    def __init__(self, model):
        super().__init__()
        self.model, self.mask_id, self.null_class, self.calls = model, model.mask_id, model.null_class, []

    def check_labels(self, labels, batch):
        self.model.check_labels(labels, batch)

    def forward(self, tokens, labels=None):
        self.calls.append((tokens.shape[0], None if labels is None else labels.tolist()))
        return self.model(tokens, labels)


@pytest.mark.parametrize("guidance", [0.0, 0.5, 2.0, 4.0])
def test_one_forward_pass_of_2b_rows_gives_both_halves(tiny_conditional, guidance):
    tokens, _ = make_inputs(B=2)
    labels = torch.tensor([0, 2])
    counting = Counting(tiny_conditional)
    logits = guided_logits(counting, tokens, labels, guidance)
    assert counting.calls == [(4, [0, 2, 3, 3])]  # the labelled rows, then the same rows with the null class
    expected = guided(tiny_conditional(tokens, labels), tiny_conditional(tokens), guidance)
    torch.testing.assert_close(logits, expected)


def test_w_1_is_the_conditional_model_exactly_and_w_0_the_unconditional(tiny_conditional):
    tokens, token_mask = make_inputs()
    labels = torch.tensor([0, 1, 2, 1])
    counting = Counting(tiny_conditional)
    assert torch.equal(guided_logits(counting, tokens, labels, 1.0), tiny_conditional(tokens, labels))
    assert counting.calls == [(4, [0, 1, 2, 1])]  # no unconditional half is computed
    torch.testing.assert_close(guided_logits(tiny_conditional, tokens, labels, 0.0), tiny_conditional(tokens))
    # a whole decode at w = 1 is the conditional model's decode, draw for draw
    labelled = Counting(tiny_conditional)
    labelled.forward = lambda tokens, labels=None: tiny_conditional(tokens, torch.tensor([0, 1, 2, 1]))
    one, two = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    settings = DecodeSettings(guidance=1.0)
    assert torch.equal(iterative_decode(tiny_conditional, tokens, token_mask, settings, one, labels=labels),
                       iterative_decode(labelled, tokens, token_mask, settings, two))


def test_a_label_steers_the_decode_and_no_label_is_the_null_class(tiny_conditional):
    tokens, token_mask = make_inputs()
    decode = lambda labels, w=2.0: iterative_decode(tiny_conditional, tokens, token_mask, DecodeSettings(guidance=w),
                                                    torch.Generator().manual_seed(0), labels=labels)
    assert not torch.equal(decode(torch.tensor([0, 0, 0, 0])), decode(torch.tensor([2, 2, 2, 2])))
    assert torch.equal(decode(None), decode(torch.tensor([3, 3, 3, 3]), w=1.0))


def test_labels_are_refused_by_an_unconditional_model_before_decoding(tiny_model):
    tokens, token_mask = make_inputs()
    with pytest.raises(ValueError, match="this transformer is unconditional"):
        iterative_decode(tiny_model, tokens, token_mask, labels=torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("value", [-0.5, float("nan"), float("inf"), True, "2"])
def test_a_bad_guidance_is_refused(value):
    with pytest.raises(ValueError, match=r"guidance w must be a finite number ≥ 0 \(0: unconditional, 1: the conditional"):
        DecodeSettings(guidance=value)


def test_the_generation_default_sits_beside_the_inpainting_default():
    assert GENERATION.label == "cubic T=12 w=4" and GENERATION.sampling == "1→0.5"  # README "Generation"
    assert DecodeSettings().label == "cosine T=8 retok×5 blur 0.5"  # inpainting's row name did not change
    assert (GENERATION.retokenize, GENERATION.blur) == (0, 0.0)
