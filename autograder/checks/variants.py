"""Every known misconception of notebooks 03 and 04 that a check recognises, in one place.

Each ``Variant`` has a short name (the tests refer to it), what a student with that one
mistake computes, and the words the student reads, in the notebook's notation. A check runs
the student's function and each variant on the same crafted inputs, chosen so that the
variants give different answers there, and names the variant whose answer the student's
matches (``autograder.core.diagnose``); a mistake no variant explains gets expected against got.

Two mistakes that compute the same thing on every input cannot be told apart and share one
variant: one Gumbel value for all tokens (or one per image) and no noise at all rank the tokens
identically, since adding one number to every confidence of a row changes no ranking.
"""

import math

import torch

from autograder.core import Variant
from maskgit_lab import decoding

# --------------------------------------------------------------------------- τ_t, notebook 04 § 2

ANNEALING = [
    Variant("no annealing", lambda tau, t, T: tau,
            "no annealing: the temperature stays τ at every step. It must shrink linearly, "
            "τ·(1 − (t+1)/T), so that the noise fades and is exactly 0 at the last step"),
    Variant("annealing off by one", lambda tau, t, T: tau * (1 - t / T),
            "off by one: after step t the progress is (t+1)/T, not t/T, so the last step t = T−1 must give exactly 0"),
    Variant("annealing reversed", lambda tau, t, T: tau * (t + 1) / T,
            "annealed the wrong way round: the noise must be largest at the first step and fade to 0 at the last, "
            "τ·(1 − (t+1)/T)"),
]

# --------------------------------------------------------------------------- n_t, notebook 04 § 3


def _at_least_one(n, n0, t, T):
    return torch.where(n0 > 0, n.clamp(min=1), n) if t < T - 1 else n


def _floor(x: torch.Tensor) -> torch.Tensor:
    return torch.floor(x).long()


COUNTS = [  # wrong(schedule, t, T, n0) -> (B,) counts
    Variant("counts rounded up", lambda g, t, T, n0: _at_least_one(torch.ceil(g((t + 1) / T) * n0.double()).long(), n0, t, T),
            "rounded up: the count is floor(γ((t+1)/T)·n₀), rounded down (torch.floor)"),
    Variant("counts rounded to nearest",
            lambda g, t, T, n0: _at_least_one(torch.round(g((t + 1) / T) * n0.double()).long(), n0, t, T),
            "rounded to the nearest integer: the count is floor(γ((t+1)/T)·n₀), rounded down (torch.floor)"),
    Variant("counts off by one", lambda g, t, T, n0: _at_least_one(_floor(g(t / T) * n0.double()), n0, t, T),
            "off by one step: after step t the progress is r = (t+1)/T, not t/T (γ(0) = 1 would mask everything again)"),
    Variant("counts drop to 0", lambda g, t, T, n0: _floor(g((t + 1) / T) * n0.double()),
            "the count can drop to 0 before the last step: keep at least one token masked while t < T−1 "
            "(for an image with anything unknown), so that every one of the T steps has work to do"),
    Variant("at least one also where n0 = 0",
            lambda g, t, T, n0: _floor(g((t + 1) / T) * n0.double()).clamp(min=1) if t < T - 1
            else _floor(g((t + 1) / T) * n0.double()),
            "an image with nothing unknown (n₀ = 0) has nothing to mask: apply the 'at least one' rule only where n₀ > 0"),
    Variant("1 - gamma", lambda g, t, T, n0: _at_least_one(_floor((1 - g((t + 1) / T)) * n0.double()), n0, t, T),
            "γ is the fraction still masked, not the fraction decoded: use γ((t+1)/T)·n₀, not (1 − γ)·n₀"),
    Variant("counts in float32", lambda g, t, T, n0: _at_least_one(_floor(g(torch.tensor((t + 1) / T)) * n0), n0, t, T),
            "off by one only where γ·n₀ is (almost) a whole number: float32 rounding. Call schedule((t + 1) / steps) with "
            "the Python float, which is computed in float64, and multiply by n0.double() before the floor"),
]

STEP_COUNTS = [  # the count inside decode_step: wrong(schedule, t, T, n0, now), now = the tokens masked now
    Variant("counts from the current mask", lambda g, t, T, n0, now: decoding.masked_after_step(g, t, T, now),
            "the number of tokens kept masked must come from the unknowns at the start, not the ones still masked now: "
            "n = masked_after_step(schedule, t, steps, n0), with n0 as given, not mask.sum(1). γ((t+1)/T) is a fraction "
            "of the ORIGINAL n₀; applied to the tokens masked now, the fractions multiply and the count shrinks far "
            "faster than the schedule says"),
    Variant("counts of decoded tokens", lambda g, t, T, n0, now: n0 - decoding.masked_after_step(g, t, T, n0),
            "you re-mask as many tokens as should be DECODED by now, n₀ − n_t: the count is of the tokens that stay "
            "masked after step t, n = masked_after_step(schedule, t, steps, n0), and exactly that many are re-masked"),
]


# --------------------------------------------------------------------------- one step, notebook 04 § 4


def buggy_step(confidence="log p", noise="per token", anneal=None, sample="multinomial", rank="ascending"):
    """decoding.decode_step with one thing done another way, as a student would write it.

    confidence: "log p" (right), "p" (the raw probability), "max p" (the most likely code's, not
    the sample's), "logit" (the sample's logit, not normalised); noise: "per token" or "none";
    anneal: None (right) or a variant of ``ANNEALING``; sample: "multinomial" or "argmax";
    rank: "ascending" (right: the least confident are re-masked) or "descending".
    """
    scale = decoding.annealed_temperature if anneal is None else anneal.wrong

    def step(logits, current, mask, n0, t, steps, schedule, temperature, mask_id, generator=None):
        B, N, K = logits.shape
        log_probs = logits.float().log_softmax(-1)  # (B, N, K)
        if sample == "argmax":
            sampled = log_probs.argmax(-1)
        else:
            sampled = torch.multinomial(log_probs.exp().view(B * N, K), 1, generator=generator).view(B, N)
        c = {"log p": log_probs, "p": log_probs.exp(), "logit": logits.float()}.get(confidence)
        c = log_probs.max(-1).values if c is None else c.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)  # (B, N)
        if noise == "per token":
            c = c + scale(temperature, t, steps) * decoding.gumbel_noise((B, N), generator)
        c = c.masked_fill(~mask, math.inf)
        n = decoding.masked_after_step(schedule, t, steps, n0)
        ranks = c.argsort(dim=1, descending=rank == "descending").argsort(dim=1)
        new_mask = ranks < n.unsqueeze(1)
        return torch.where(mask, sampled, current).masked_fill(new_mask, mask_id), new_mask

    return step


_BY_NAME = {v.name: v for v in ANNEALING}

STEP = [  # recognised by check_decode_step_noise from what each re-masks on its crafted inputs
    Variant("sample argmax", buggy_step(sample="argmax"),
            "every decoded token got the same code although all codes were equally likely: sample ŝ_i from "
            "p_i = softmax(logits) with torch.multinomial (and the generator) instead of taking the argmax"),
    Variant("no per-token noise", buggy_step(noise="none"),
            "which tokens get re-masked never changes with the random seed, although every confidence is the same: "
            "add τ_t·g_i with g = gumbel_noise((B, N), generator), one g_i per token, and "
            "τ_t = annealed_temperature(temperature, t, steps). One noise value for all tokens (or none) shifts every "
            "confidence equally and keeps the ranking"),
    Variant("confidence is p", buggy_step(confidence="p"),
            "your confidence is the probability p_i(ŝ_i), not its logarithm: p lies between 0 and 1, so even the small "
            "noise of a late step outweighs the model's certainty and sure tokens (p ≈ 1) get re-masked before unsure "
            "ones (p = 1/K). Score c_i = log p_i(ŝ_i) + τ_t·g_i: log_softmax(-1), then gather the sample's entry"),
    Variant("confidence of the argmax", buggy_step(confidence="max p"),
            "your confidence is the probability of the most likely code, max_k p_i(k), not of the code you sampled: a "
            "token whose sample ŝ_i is an unlikely code must be among the first re-masked. Score the sample, "
            "c_i = log p_i(ŝ_i) = log_probs.gather(-1, sampled.unsqueeze(-1))"),
    Variant("confidence is the logit", buggy_step(confidence="logit"),
            "your confidence is the sample's logit, not its log-probability: logits equal log p only up to a constant "
            "that differs from position to position, so positions are compared on different scales. Take "
            "logits.log_softmax(-1) first, then gather the sample's entry: c_i = log p_i(ŝ_i) + τ_t·g_i"),
    Variant("noise not annealed", buggy_step(anneal=_BY_NAME["no annealing"]),
            "the noise keeps its full strength τ at every step, so even the last step re-masks sure tokens: scale g_i by "
            "τ_t = annealed_temperature(temperature, t, steps) = τ·(1 − (t+1)/T), not by temperature"),
    Variant("noise annealed the wrong way", buggy_step(anneal=_BY_NAME["annealing reversed"]),
            "the noise grows instead of fading: it is weak at the first step and strongest at the last. Scale g_i by "
            "τ_t = annealed_temperature(temperature, t, steps) = τ·(1 − (t+1)/T), with this step's t"),
    Variant("noise annealed off by one", buggy_step(anneal=_BY_NAME["annealing off by one"]),
            "the noise is not 0 at the last step: it is scaled by τ·(1 − t/T), which gives τ/T at t = T−1. Use "
            "τ_t = annealed_temperature(temperature, t, steps) = τ·(1 − (t+1)/T)"),
    Variant("most confident re-masked", buggy_step(rank="descending"),
            "you re-mask the MOST confident tokens: the n_t re-masked must be the least confident ones. "
            "ranks = c.argsort(dim=1).argsort(dim=1) (ascending, 0 = least confident), new mask = ranks < n.unsqueeze(1). "
            "(With the ranking reversed, the +inf given to decided tokens puts them first in line to be re-masked)"),
]

PROTECTION = [  # recognised by check_decode_step_keeps_decided; wrong: (decided re-masked when least sure, when most sure)
    Variant("decided tokens compete", (True, False),
            "a known or already decoded token was re-masked: it competed with the tokens masked now and was among the "
            "least confident. Give every token that is not masked now the confidence +inf "
            "(c.masked_fill(~mask, float('inf'))), so it is never among the n_t re-masked"),
    Variant("decided tokens get -inf", (True, True),
            "known and already decoded tokens were re-masked first, even where the model was sure of them: they get "
            "the LOWEST confidence. Give them +inf, not −inf: c.masked_fill(~mask, float('inf'))"),
]

# --------------------------------------------------------------------------- exact-count masks, notebook 03


def _ranked(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    return scores.argsort(dim=1).argsort(dim=1) < counts.unsqueeze(1)


def _counts(ratio, B: int, N: int, rounding=torch.floor, least: int = 1) -> torch.Tensor:
    ratio = torch.as_tensor(ratio, dtype=torch.float64).expand(B)
    return rounding(ratio * N).long().clamp(min=least, max=N)


def _coin_flip(B, N, ratio, generator=None):
    ratio = torch.as_tensor(ratio, dtype=torch.float64).expand(B).unsqueeze(1)
    return torch.rand(B, N, generator=generator, dtype=torch.float64) < ratio


def _ratio_redrawn(B, N, ratio, generator=None):
    drawn = torch.rand(B, generator=generator)  # what training does before calling it, done again inside
    return _ranked(torch.rand(B, N, generator=generator), _counts(drawn, B, N))


MASK_COUNTS = [  # wrong(B, N, ratio, generator) -> (B, N) bool
    Variant("kept tokens marked True", lambda B, N, ratio, generator=None: ~_ranked(torch.rand(B, N, generator=generator),
                                                                                     _counts(ratio, B, N)),
            "That is N minus the expected count: your True marks the tokens that are KEPT. True must mean masked, "
            "and the ratio is the fraction masked."),
    Variant("coin flip per token", _coin_flip,
            "The count changes from row to row and follows the ratio only on average: a coin flip per token "
            "(torch.rand(...) < ratio) masks ratio·N tokens only on average. Mask EXACTLY max(1, floor(ratio·N)) tokens "
            "in every row, e.g. the lowest ranks of random scores."),
    Variant("ratio drawn inside", _ratio_redrawn,
            "The counts do not follow the ratio you are given: with ratio 0.1 and ratio 0.9 your rows mask about as "
            "many tokens. The function must not draw a ratio of its own (training draws it and passes it in): mask "
            "max(1, floor(ratio·N)) tokens with the `ratio` argument."),
    Variant("mask ratio rounded up", lambda B, N, ratio, generator=None: _ranked(
        torch.rand(B, N, generator=generator), _counts(ratio, B, N, torch.ceil)),
        "You rounded ratio·N up; use floor(ratio·N), like the decoding schedule does."),
    Variant("mask ratio rounded to nearest", lambda B, N, ratio, generator=None: _ranked(
        torch.rand(B, N, generator=generator), _counts(ratio, B, N, torch.round)),
        "You rounded ratio·N to the nearest integer; use floor(ratio·N), like the decoding schedule does."),
    Variant("no token masked for a small ratio", lambda B, N, ratio, generator=None: _ranked(
        torch.rand(B, N, generator=generator), _counts(ratio, B, N, least=0)),
        "floor(ratio·N) is 0 for a small ratio, but every row needs at least one masked token, or the loss has "
        "nothing to score: count = max(1, floor(ratio·N))."),
    Variant("one ratio for every row", lambda B, N, ratio, generator=None: _ranked(
        torch.rand(B, N, generator=generator), _counts(torch.as_tensor(ratio).flatten()[0], B, N)),
        "Each row has its own ratio when ratio is a tensor of shape (B,); compute one count per row, "
        "counts = max(1, floor(ratio·N)) of shape (B,)."),
]
