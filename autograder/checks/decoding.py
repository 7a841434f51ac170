"""Checks for notebook 04, iterative decoding: Gumbel noise, the annealed temperature, the
number of tokens kept masked after each step, and one decoding step.

Every check compares the student's function with ``maskgit_lab.decoding`` on small tensors
(milliseconds, no model) and, when they disagree, names the misconception the answer most
likely comes from. The reference for ``decode_step`` is ``decoding.decode_step``, the step
that ``decoding.iterative_decode`` loops, so a loop of it reproduces the package exactly.
"""

import contextlib
import functools
import math

import torch
from torch.nn import functional as F

from autograder.checks.common import expect, quiet, tensor
from autograder.checks.variants import ANNEALING, COUNTS, GUMBEL_NOISE, PROTECTION, STEP, STEP_COUNTS, buggy_step, counted
from autograder.core import CheckFailed, computed, diagnose, graded, name_each
from maskgit_lab import decoding
from maskgit_lab.schedules import SCHEDULES, gamma

EULER_GAMMA = 0.5772156649015329  # the mean of a standard Gumbel variable
GUMBEL_VARIANCE = math.pi**2 / 6


# --------------------------------------------------------------------------- Gumbel noise


@contextlib.contextmanager
def uniforms_at_the_edges():
    """Make ``torch.rand`` return exactly 0 and 1 (alternately), the values a clamp must survive."""
    real = torch.rand

    def rand(*size, generator=None, **kwargs):
        out = real(*size, generator=generator, **kwargs)  # same shape, dtype and device as asked
        flat = out.view(-1)
        flat[0::2], flat[1::2] = 0.0, 1.0
        return out

    torch.rand = rand
    try:
        yield
    finally:
        torch.rand = real


def _as_tensor(value, what: str, shape: tuple) -> torch.Tensor:
    tensor(value, f"the result of {what}, of shape {shape},")
    if tuple(value.shape) != tuple(shape):
        raise CheckFailed(f"{what} should return shape {shape} (one value per entry), got {tuple(value.shape)}")
    return value


def _gumbel(fn) -> str:
    shape = (4, 64)
    noise = _as_tensor(fn(shape, torch.Generator().manual_seed(0)), "gumbel_noise(shape, generator)", shape)
    if not noise.is_floating_point():
        raise CheckFailed(f"the noise must be floating point, got {noise.dtype}")
    distinct = noise.unique().numel()
    why = diagnose(distinct, noise.numel(), GUMBEL_NOISE)
    if why:
        raise CheckFailed(why)
    if distinct < 0.9 * noise.numel():
        raise CheckFailed(f"only {distinct} distinct values among {noise.numel()} entries: the noise is shared between "
                          f"tokens (one sample per image or per row?). Draw one independent g_i per token, of the full shape")
    if not torch.isfinite(noise).all():
        raise CheckFailed("the noise holds inf or nan: clamp u away from 0 and 1 before taking the logs")
    if not torch.equal(noise, fn(shape, torch.Generator().manual_seed(0))):
        raise CheckFailed("two generators seeded the same gave different noise: pass generator=generator to torch.rand, "
                          "so that a seeded decoding repeats exactly")
    if torch.equal(noise, fn(shape, torch.Generator().manual_seed(1))):
        raise CheckFailed("generators with different seeds gave the same noise: draw u from the generator you are given")
    many = fn((200, 100), torch.Generator().manual_seed(2)).double()
    mean, var = many.mean().item(), many.var().item()
    if abs(mean + EULER_GAMMA) < 0.05:
        raise CheckFailed(f"the mean is {mean:.3f} ≈ −0.577, the negative of a Gumbel's: a sign is missing. "
                          f"g = −log(−log u) has two minus signs")
    if abs(mean - EULER_GAMMA) > 0.05 or abs(var - GUMBEL_VARIANCE) > 0.15:
        raise CheckFailed(f"this is not standard Gumbel noise: over 20000 samples the mean is {mean:.3f} and the variance "
                          f"{var:.3f}, where Gumbel(0, 1) gives ≈ {EULER_GAMMA:.3f} (Euler's constant) and "
                          f"π²/6 ≈ {GUMBEL_VARIANCE:.3f}. Use g = −log(−log u) with u ~ U(0, 1)")
    with uniforms_at_the_edges():
        edge = fn((2, 6), None)
    if torch.is_tensor(edge) and not torch.isfinite(edge).all():
        raise CheckFailed("with u = 0 or u = 1 the noise becomes ±inf (log 0): clamp u first, "
                          "e.g. u.clamp(1e-20, 1 - 1e-7), so that every confidence stays a finite number")
    return (f"one standard Gumbel value per token (mean {mean:.3f}, variance {var:.3f}), "
            f"repeatable with a seeded generator, finite even at u = 0 and u = 1")


@graded(1)
@quiet
def check_gumbel_noise(fn) -> str:
    """``fn(shape, generator) -> Tensor``: independent standard Gumbel samples, one per entry."""
    return _gumbel(expect(fn, "gumbel_noise(shape, generator)"))


# --------------------------------------------------------------------------- annealed temperature


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _annealed(fn) -> str:
    cases = [(tau, t, T) for T in (1, 2, 3, 5, 8, 12, 16) for t in range(T) for tau in (1.0, 4.5)]
    got = {}
    for case in cases:
        value = fn(*case)
        try:
            got[case] = float(value)
        except (TypeError, ValueError, RuntimeError):
            raise CheckFailed(f"annealed_temperature{case} returned {value!r}; return one number") from None
    expected = {c: decoding.annealed_temperature(*c) for c in cases}
    why = diagnose(got, expected, computed(ANNEALING, lambda wrong: {c: wrong(*c) for c in cases}),
                   same=lambda a, b: all(_close(a[c], b[c]) for c in cases))
    if why is None:
        if not _close(float(fn(0.0, 0, 4)), 0.0):
            raise CheckFailed("temperature 0 must stay 0 at every step (no noise at all)")
        return "τ·(1 − (t+1)/T) at every step: full noise at the start, exactly 0 at the last step"
    if why:
        raise CheckFailed(why)
    for tau, t, T in cases:
        if t == T - 1 and not _close(got[(tau, t, T)], 0.0):
            raise CheckFailed(f"at the last step (t = {t}, T = {T}) the temperature must be exactly 0, got {got[(tau, t, T)]:.4g}: "
                              f"without annealing to 0 the final choice is still random")
    tau, t, T = next(case for case in cases if not _close(got[case], expected[case]))  # why == "": one differs
    raise CheckFailed(f"annealed_temperature({tau}, t={t}, steps={T}): expected τ·(1 − (t+1)/T) = "
                      f"{expected[tau, t, T]:.4f}, got {got[tau, t, T]:.4f}")


@graded(1)
@quiet
def check_annealed_temperature(fn) -> str:
    """``fn(temperature, t, steps) -> float``, exactly ``decoding.annealed_temperature``."""
    return _annealed(expect(fn, "annealed_temperature(temperature, t, steps)"))


# --------------------------------------------------------------------------- masked counts

N0 = torch.tensor([0, 1, 2, 5, 17, 40, 64])  # unknowns at the start, per image (0: nothing to decode)
ALL_STEPS = [(name, T, t) for name in SCHEDULES for T in range(1, 17) for t in range(T)]
GAMMAS = {name: gamma(name) for name in SCHEDULES}


@functools.lru_cache(maxsize=None)
def _all_counts(ways: tuple) -> dict:
    """(schedule, T, t) → the counts of an answer doing each property of ``COUNTS`` as ``ways`` says (computed once)."""
    count = counted(dict(ways))
    return {(name, T, t): count(GAMMAS[name], t, T, N0).tolist() for name, T, t in ALL_STEPS}


def _counts(fn) -> str:
    schedule = gamma("cosine")
    first = fn(schedule, 0, 8, N0.clone())
    _as_tensor(first, "masked_after_step(schedule, t, steps, n0)", tuple(N0.shape))
    if first.is_floating_point() or first.dtype == torch.bool:
        raise CheckFailed(f"return whole-number counts as an integer tensor (torch.long), got {first.dtype}: floor, then .long()")
    got = {(name, T, t): fn(GAMMAS[name], t, T, N0.clone()).tolist() for name, T, t in ALL_STEPS}
    expected = _all_counts(tuple((prop, way) for prop, (way, _) in COUNTS.items()))
    wrong = name_each(got, COUNTS, lambda ways: _all_counts(tuple(ways.items())))
    if wrong is None:
        return ("exact for all six schedules, T = 1 … 16, every step, and n₀ from 0 to 64 "
                "(including at least one masked before the last step)")
    if wrong:
        raise CheckFailed("; ".join(wrong))
    name, T, t = next(k for k in ALL_STEPS if got[k] != expected[k])
    hint = ""
    if t == T - 1:
        hint = " After the last step nothing may stay masked."
    raise CheckFailed(f"schedule {name}, T = {T}, after step t = {t}, n₀ = {N0.tolist()}: expected "
                      f"floor(γ((t+1)/T)·n₀) = {expected[(name, T, t)]} (at least 1 before the last step when n₀ > 0), "
                      f"got {got[(name, T, t)]}.{hint}")


@graded(2)
@quiet
def check_masked_after_step(fn) -> str:
    """``fn(schedule, t, steps, n0 (B,)) -> (B,) long``, exactly ``decoding.masked_after_step``."""
    return _counts(expect(fn, "masked_after_step(schedule, t, steps, n0)"))


# --------------------------------------------------------------------------- one decoding step
#
# Three checks, in the notebook's order, each judging one property and silent about the others:
# keeps_decided (codes of decided tokens, mask ids, the +inf protection), counts (n_t at every
# step), noise (which tokens are re-masked: the sample, its confidence c_i, the noise τ_t·g_i,
# the ranking). The noise check runs with γ = ½ at every step on states where every unknown
# token is still masked, so that every usual way of computing the count gives the same n_t and
# a count mistake cannot show up there; two of its probes hold γ near 0 and near 1 instead, to
# see noise whose strength follows γ, and a count that re-masks none or all there hides only them.


def decoding_state(n0: list, N: int, K: int, steps: int, t: int, schedule: str, seed: int):
    """A consistent state at the start of step t: (current (B, N), unknown at start, masked now, n0 (B,)).

    mask_id is K. The positions masked now are a subset of the initial unknowns, as many as
    decoding leaves after step t−1.
    """
    generator = torch.Generator().manual_seed(seed)
    n0 = torch.tensor(n0)
    B = len(n0)
    now = n0 if t == 0 else decoding.masked_after_step(gamma(schedule), t - 1, steps, n0)
    tokens = torch.randint(K, (B, N), generator=generator)
    unknown = torch.zeros(B, N, dtype=torch.bool)
    masked = torch.zeros(B, N, dtype=torch.bool)
    for b in range(B):
        order = torch.randperm(N, generator=generator)
        unknown[b, order[: n0[b]]] = True
        masked[b, order[: now[b]]] = True
    return tokens.masked_fill(masked, K), unknown, masked, n0


def _call_step(fn, logits, current, mask, n0, t, steps, schedule, temperature, mask_id, seed):
    """Run the student's step on copies (in-place edits must not fool the check); validate the output."""
    out = expect(fn, "decode_step(logits, current, mask, n0, t, steps, schedule, temperature, mask_id, generator)")(logits.clone(), current.clone(), mask.clone(), n0.clone(), t, steps, schedule, temperature, mask_id,
             torch.Generator().manual_seed(seed))
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("decode_step must return two tensors: (next tokens (B, N), next mask (B, N))")
    tokens, new_mask = out
    shape = tuple(current.shape)
    _as_tensor(tokens, "decode_step's first output (tokens)", shape)
    _as_tensor(new_mask, "decode_step's second output (mask)", shape)
    if new_mask.dtype != torch.bool:
        raise CheckFailed(f"the next mask must be a bool tensor (True = still masked), got {new_mask.dtype}")
    if tokens.is_floating_point():
        raise CheckFailed(f"the tokens must be integer codes (torch.long), got {tokens.dtype}")
    return tokens, new_mask


# The crafted states of the noise check: 4 images of N = 64 tokens, K = 128 codes, every token unknown
# and still masked (n₀ = 64 = masked now), so that neither the count nor the +inf protection can matter.
# The protection test uses the same states with 16 tokens decided.
PROBE_B, PROBE_N, PROBE_K = 4, 64, 128
DECIDED_PROBE = 48  # masked tokens per image in the protection test's state (16 decided)
SURE, COMMON = 40.0, 0.8  # a sure token's logit margin (p ≈ 1); the likely code's p in a two-faced distribution


def held_at(value: float):
    """The probe schedule γ(r) = ``value`` at every r: the count is floor(value·n₀) (at least 1) at every step."""

    def schedule(r):
        return r * 0 + value

    return schedule


# γ = ½ at every r: with every unknown still masked, n_t = n₀/2 whether it is computed from n₀ or from the tokens
# masked now, with γ or 1 − γ, at (t+1)/T or at t/T, as kept or as decided tokens.
half = held_at(0.5)


def probe_state(seed: int, kind: str, masked: int = PROBE_N):
    """(logits (B, N, K), current, mask, n0, unsure) for one crafted state with ``masked`` tokens masked per image;
    ``unsure`` marks half of them.

    kind: "flat" (all logits 0: every code and every token alike), "sure/unsure" (unsure tokens: p = 1/K for
    every code; sure ones and decided ones: p ≈ 1 for code 0), "shifted" (the same, with the sure tokens'
    logits lowered by 100, which changes no probability), "two-faced" (masked tokens sample code 0 with
    p = 0.8, else one of the K − 1 others with p ≈ 0.0016).
    """
    B, N, K = PROBE_B, PROBE_N, PROBE_K
    generator = torch.Generator().manual_seed(seed)
    codes = torch.randint(K, (B, N), generator=generator)
    order = torch.rand(B, N, generator=generator).argsort(dim=1)  # (B, N): a random order of the positions
    mask = torch.zeros(B, N, dtype=torch.bool).scatter_(1, order[:, :masked], True)
    unsure = torch.zeros(B, N, dtype=torch.bool).scatter_(1, order[:, : masked // 2], True)
    sure = F.one_hot(torch.zeros(B, N, dtype=torch.long), K).float() * SURE  # (B, N, K)
    if kind == "flat":
        logits = torch.zeros(B, N, K)
    elif kind == "two-faced":
        two_faced = torch.full((K,), math.log((1 - COMMON) / (K - 1)))
        two_faced[0] = math.log(COMMON)
        logits = torch.where(mask.unsqueeze(-1), two_faced, sure)
    else:
        shift = -100.0 if kind == "shifted" else 0.0
        logits = torch.where(unsure.unsqueeze(-1), torch.zeros(B, N, K), sure + shift)
    return logits, codes.masked_fill(mask, K), mask, mask.sum(dim=1), unsure


def _remasks_decided(new_mask, mask) -> bool:
    """A decided token re-masked while a token masked now was kept (+inf would have ranked it after all of them)."""
    return bool(((new_mask & ~mask).any(dim=1) & (~new_mask & mask).any(dim=1)).any())


def _codes_kept(tokens, new_mask, current, mask, K: int, where: str):
    """Decided tokens that are not re-masked keep their codes; mask ids sit exactly in the new mask."""
    kept = ~mask & ~new_mask
    if not torch.equal(tokens[kept], current[kept]):
        raise CheckFailed(f"{where}: known tokens were overwritten. A token that is already decided (a known token, or one "
                          f"decoded at an earlier step) must keep its code; only positions masked now take the new samples, "
                          f"e.g. torch.where(mask, sampled, current)")
    if ((tokens == K) & ~new_mask).any():
        raise CheckFailed(f"{where}: a position outside the new mask still holds mask_id: every token that is not re-masked "
                          f"takes its sampled code")
    if ((tokens != K) & new_mask).any():
        raise CheckFailed(f"{where}: re-masked positions must hold mask_id again, so the transformer sees them as unknown "
                          f"at the next step (tokens.masked_fill(new_mask, mask_id))")
    if ((tokens < 0) | (tokens > K)).any():
        raise CheckFailed(f"{where}: decoded tokens must be codes between 0 and K−1 = {K - 1}")


def _order(fn, t: int, steps: int, temperature: float, kind: str = "sure/unsure", level: float = 0.5, seeds=range(3),
           masked=PROBE_N) -> str:
    """Which masked tokens ``fn`` re-masks on "sure/unsure"-like states under the schedule γ ≡ ``level``: "unsure first"
    (never a sure one while an unsure one is kept), "sure first" (the reverse), "mixed", or "hidden" when it re-masks
    none or all of them (its count, check_decode_step_counts's to judge, hides the ranking)."""
    inverted = reversed_too = hidden = False
    for seed in seeds:
        logits, current, mask, n0, unsure = probe_state(seed, kind, masked)
        _, new_mask = _call_step(fn, logits, current, mask, n0, t, steps, held_at(level), temperature, PROBE_K, seed)
        sure = mask & ~unsure
        hidden |= bool(((new_mask & mask).sum(1) % mask.sum(1) == 0).any())
        inverted |= bool(((new_mask & sure).any(1) & (~new_mask & unsure).any(1)).any())
        reversed_too |= bool(((new_mask & unsure).any(1) & (~new_mask & sure).any(1)).any())
    if hidden:
        return "hidden"
    return "unsure first" if not inverted else "sure first" if not reversed_too else "mixed"


def _keeps_decided(fn) -> str:
    K, N, steps, t = 8, 16, 6, 2
    cosine = gamma("cosine")
    for seed in range(3):
        current, _, mask, n0 = decoding_state([16, 11, 5], N, K, steps, t, "cosine", seed)
        logits = torch.randn(3, N, K, generator=torch.Generator().manual_seed(seed))
        tokens, new_mask = _call_step(fn, logits, current, mask, n0, t, steps, cosine, 4.5, K, seed)
        _codes_kept(tokens, new_mask, current, mask, K, "with random logits")
    current, _, mask, n0 = decoding_state([16, 11, 5], N, K, steps, t, "cosine", 3)
    # Decided positions confidently predict a code other than their own: sampling there would overwrite them.
    other = torch.where(mask, 0, (current + 1) % K)
    logits = F.one_hot(other, K).float() * 20.0
    tokens, new_mask = _call_step(fn, logits, current, mask, n0, t, steps, cosine, 4.5, K, 3)
    _codes_kept(tokens, new_mask, current, mask, K, "where the model is sure a known token should be something else")
    # The +inf protection, seen twice without noise: decided tokens least sure (uniform logits, masked ones sure),
    # then decided tokens most sure (masked ones half sure, half unsure). Only +inf keeps them out both times.
    logits = torch.where(mask.unsqueeze(-1), F.one_hot(torch.zeros_like(current), K).float() * 20.0, torch.zeros(3, N, K))
    tokens, new_mask = _call_step(fn, logits, current, mask, n0, t, steps, cosine, 0.0, K, 4)
    where = "where the known tokens' own predictions are the least confident"
    _codes_kept(tokens, new_mask, current, mask, K, where)
    when_least = _remasks_decided(new_mask, mask)
    logits, current, mask, n0, _ = probe_state(5, "sure/unsure", DECIDED_PROBE)
    tokens, new_mask = _call_step(fn, logits, current, mask, n0, 0, 2, half, 0.0, PROBE_K, 5)
    _codes_kept(tokens, new_mask, current, mask, PROBE_K, "where the known tokens' own predictions are sure")
    when_most = _remasks_decided(new_mask, mask)
    if _order(fn, 0, 2, 0.0, seeds=[5], masked=DECIDED_PROBE) == "sure first":  # the ranking is reversed: check_decode_step_noise names it
        return ("known and already decoded tokens keep their codes unless re-masked, and re-masked positions hold "
                "mask_id (which tokens get re-masked is check_decode_step_noise's to judge)")
    why = diagnose((when_least, when_most), (False, False), PROTECTION)
    if why == "":
        why = ("a known or already decoded token was re-masked while a token masked now was kept: give every token "
               "that is not masked now the confidence +inf (c.masked_fill(~mask, float('inf'))), so it is never among "
               "the n_t re-masked")
    if why:
        raise CheckFailed(why)
    return "known and already decoded tokens keep their codes and are never re-masked; re-masked positions hold mask_id"


COUNT_RUNS = [(name, steps) for name in SCHEDULES for steps in (1, 2, 3, 5, 8, 16)]
COUNT_N, COUNT_N0 = 16, [16, 9, 1, 0]  # tokens per image; unknowns at the start, per image


def _count_trace(fn) -> dict:
    """(schedule, T) → the tokens masked after each step when ``fn`` decodes from n₀ = COUNT_N0, step after step."""
    K, N = 8, COUNT_N
    trace = {}
    for name, steps in COUNT_RUNS:
        current, _, mask, n0 = decoding_state(COUNT_N0, N, K, steps, 0, name, steps)
        trace[name, steps] = []
        for t in range(steps):
            logits = torch.randn(len(COUNT_N0), N, K, generator=torch.Generator().manual_seed(100 * steps + t))
            current, mask = _call_step(fn, logits, current, mask, n0, t, steps, gamma(name), 4.5, K, t)
            trace[name, steps].append(mask.sum(dim=1).tolist())
    return trace


@functools.lru_cache(maxsize=None)
def _counted_trace(ways: tuple) -> dict:
    """What ``_count_trace`` gives for a step whose count does each property of ``STEP_COUNTS`` and ``COUNTS`` the way
    ``ways`` says (computed once)."""
    ways = dict(ways)
    count = counted(ways)
    trace = {}
    for name, steps in COUNT_RUNS:
        n0 = torch.tensor(COUNT_N0)
        mask = torch.arange(COUNT_N) < n0.unsqueeze(1)  # (B, N): which tokens are masked now; only their number matters
        trace[name, steps] = []
        for t in range(steps):
            kept = count(gamma(name), t, steps, ways["tokens counted"](n0, mask))
            now = ways["what is counted"](kept, n0)
            mask = torch.arange(COUNT_N) < now.unsqueeze(1)
            trace[name, steps].append(now.tolist())
    return trace


STEP_COUNT_PARTS = {**STEP_COUNTS, **COUNTS}


def _counts_in_step(fn) -> str:
    got = _count_trace(fn)
    expected = _counted_trace(tuple((prop, way) for prop, (way, _) in STEP_COUNT_PARTS.items()))
    wrong = name_each(got, STEP_COUNT_PARTS, lambda ways: _counted_trace(tuple(ways.items())))
    if wrong is None:
        return "counts from n₀ at every step, for all six schedules and T = 1, 2, 3, 5, 8, 16; nothing masked at the end"
    (name, steps), t = next((run, t) for run in COUNT_RUNS for t in range(run[1]) if got[run][t] != expected[run][t])
    where = f"schedule {name}, T = {steps}, n₀ = {COUNT_N0}, after step t = {t}"
    if wrong:
        raise CheckFailed(f"{where}: expected {expected[name, steps][t]} tokens masked, got {got[name, steps][t]}: "
                          + "; ".join(wrong))
    if t == steps - 1:
        raise CheckFailed(f"{where} (the last step): no token may stay masked, every remaining one takes its "
                          f"sample (n_(T−1) = 0); {got[name, steps][t]} are still masked")
    raise CheckFailed(f"{where}: expected floor(γ((t+1)/T)·n₀) = {expected[name, steps][t]} tokens masked after the step "
                      f"(at least 1 before the last step where n₀ > 0), got {got[name, steps][t]}: "
                      f"n = masked_after_step(schedule, t, steps, n0), with n₀ the unknowns at the start")


# What the noise check observes, in order. Each entry: (key, what the input is, the call, words for each outcome).
_UNSURE = f"half of the masked tokens sure (p ≈ 1), half unsure (p = 1/{PROBE_K} for every code)"
ORDER_PROBES = [  # (t, T, τ, kind[, γ ≡ level, ½ if not given]): τ_t = τ·(1 − (t+1)/T) is large, tiny, or 0 for the right answer
    (0, 2, 100.0, "sure/unsure"),  # τ_t = 50: the noise outweighs log p, so sure and unsure mix
    (9998, 10000, 100.0, "sure/unsure"),  # τ_t = 0.01: unsure first (off by one: 0.02; reversed, unannealed: ≈ 100)
    (0, 400, 100.0, "sure/unsure"),  # τ_t = 99.75 (reversed annealing: 0.25)
    (0, 1000, 0.25, "sure/unsure"),  # τ_t ≈ 0.25: log p still wins (gap log K = 4.9); a raw probability (gap ≈ 1) does not
    (1, 2, 100.0, "sure/unsure"),  # the last step: τ_t = 0 (off by one: τ/T = 50)
    (0, 2, 0.0, "shifted"),  # no noise; the sure tokens' logits shifted, which changes no log p
    # With γ ≡ 1/1024 one token is re-masked (at least one), with γ ≡ 1 − 1/1024 all but one: τ_t = 50 either way, but
    # noise scaled by γ is ≈ 0.1 in the first and noise scaled by 1 − γ ≈ 0.1 in the second.
    (0, 2, 100.0, "sure/unsure", 1 / 1024),
    (0, 2, 100.0, "sure/unsure", 1 - 1 / 1024),
]


def _step_signature(fn) -> tuple:
    """What ``fn`` does on the crafted states: ((observation, outcome), ...), compared with the reference's."""
    logits, current, mask, n0, _ = probe_state(0, "sure/unsure")
    _, new_mask = _call_step(fn, logits, current, mask, n0, 0, 1000, half, 0.25, PROBE_K, 0)
    if new_mask.sum(dim=1).tolist() != [PROBE_N // 2] * PROBE_B:
        raise CheckFailed(f"this check judges which tokens get re-masked, on states where all n₀ = {PROBE_N} tokens are "
                          f"masked and γ = ½, so that n_t = {PROBE_N // 2} however it is computed; your step re-masked "
                          f"{new_mask.sum(dim=1).tolist()}, so its ranking cannot be seen. Make the count "
                          f"n = masked_after_step(schedule, t, steps, n0) right first (check_decode_step_counts)")
    picks, codes = set(), set()
    for seed in range(6):
        logits, current, mask, n0, _ = probe_state(seed, "flat")
        tokens, new_mask = _call_step(fn, logits, current, mask, n0, 0, 8, half, 4.5, PROBE_K, seed)
        picks.add(tuple(new_mask.flatten().tolist()))
        codes.update(tokens[mask & ~new_mask].tolist())
    rare_kept = False
    for seed in range(3):
        logits, current, mask, n0, _ = probe_state(seed, "two-faced")
        tokens, new_mask = _call_step(fn, logits, current, mask, n0, 0, 2, half, 0.0, PROBE_K, seed)
        rare_kept |= bool((tokens[mask & ~new_mask] != 0).any())
    orders = tuple((probe, _order(fn, *probe)) for probe in ORDER_PROBES)
    return (("codes vary", len(codes) > 1), ("seed matters", len(picks) > 1), ("unlikely samples kept", rare_kept)) + orders


@functools.lru_cache(maxsize=None)
def _known_signature(ways: tuple) -> tuple:
    """The signature of a step doing each property of ``STEP`` the way ``ways`` says: computed once, it never changes."""
    return _step_signature(buggy_step(**dict(ways)))


def _alike(got: tuple, known: tuple) -> bool:
    """Two signatures agree wherever the answer's count let its ranking show."""
    return all(g == k or "hidden" in (g[1], k[1]) for g, k in zip(got, known))


ORDER_OUTCOMES = {"unsure first": "the unsure ones re-masked first", "sure first": "the sure ones re-masked first",
                  "mixed": "sure and unsure ones re-masked alike", "hidden": "none or all of them re-masked"}


def _describe(observation) -> tuple:
    """(the crafted input, in words; what each outcome means there) for one entry of ``_step_signature``."""
    if observation == "codes vary":
        return f"with all {PROBE_K} codes equally likely", {True: "varied codes", False: "one code for every token"}
    if observation == "seed matters":
        return ("with every confidence equal, under two generator seeds",
                {True: "different tokens re-masked", False: "the same tokens re-masked"})
    if observation == "unlikely samples kept":
        return (f"without noise, where each token samples code 0 (p = {COMMON}) or an unlikely other code",
                {True: "some tokens with an unlikely sample kept", False: "every token with an unlikely sample re-masked"})
    t, T, tau, kind, *level = observation
    shifted = ", the sure tokens' logits lowered by 100 (the same probabilities)" if kind == "shifted" else ""
    schedule = f" and γ ≡ {level[0]:.4g}" if level else ""
    return (f"at step t = {t} of T = {T} with τ = {tau:g}{schedule} (so τ_t = {decoding.annealed_temperature(tau, t, T):.3g}), "
            f"{_UNSURE}{shifted}", ORDER_OUTCOMES)


def _noise_in_step(fn) -> str:
    got = _step_signature(fn)
    wrong = name_each(got, STEP, lambda ways: _known_signature(tuple(ways.items())), same=_alike)
    if wrong is None:
        return ("samples ŝ_i, scores c_i = log p_i(ŝ_i) + τ_t·g_i with per-token noise annealed to 0, and re-masks the "
                "least confident")
    if wrong:
        raise CheckFailed("; ".join(wrong))
    expected = _known_signature(tuple((prop, way) for prop, (way, _) in STEP.items()))
    (observation, outcome), (_, want) = next((g, e) for g, e in zip(got, expected) if not _alike((g,), (e,)))
    situation, outcomes = _describe(observation)
    raise CheckFailed(f"{situation}: expected {outcomes[want]}, got {outcomes[outcome]}. Check each part of "
                      f"c_i = log p_i(ŝ_i) + τ_t·g_i (ŝ_i sampled with torch.multinomial, g = gumbel_noise((B, N), "
                      f"generator), τ_t = annealed_temperature(temperature, t, steps)) and that the n_t least confident "
                      f"are re-masked")


@graded(1)
@quiet
def check_decode_step_keeps_decided(fn) -> str:
    """Known and already decoded tokens never change nor come back; mask ids sit exactly where masked."""
    return _keeps_decided(fn)


@graded(2)
@quiet
def check_decode_step_counts(fn) -> str:
    """Per-step counts from the initial unknowns, for every schedule and several T; nothing masked at the end."""
    return _counts_in_step(fn)


@graded(1)
@quiet
def check_decode_step_noise(fn) -> str:
    """Which tokens are re-masked: the sample, its confidence log p plus per-token Gumbel noise annealed towards 0,
    the least confident first. Judged on states where the count cannot matter (γ held constant, nothing decided yet)."""
    return _noise_in_step(fn)


@graded(4)
@quiet
def check_decode_step(fn) -> str:
    """All three decode_step checks at once (what ``use_or_reference`` asks before using the answer)."""
    return "; ".join([_keeps_decided(fn), _counts_in_step(fn), _noise_in_step(fn)])
