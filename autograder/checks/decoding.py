"""Checks for notebook 04, iterative decoding: Gumbel noise, the annealed temperature, the
number of tokens kept masked after each step, and one decoding step.

Every check compares the student's function with ``maskgit_lab.decoding`` on small tensors
(milliseconds, no model) and, when they disagree, names the misconception the answer most
likely comes from. The reference for ``decode_step`` is ``decoding.decode_step``, the step
that ``decoding.iterative_decode`` loops, so a loop of it reproduces the package exactly.
"""

import contextlib
import math

import torch

from autograder.checks.common import quiet
from autograder.core import CheckFailed, diagnose, graded
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
    if not torch.is_tensor(value):
        raise CheckFailed(f"{what} should return a torch tensor of shape {shape}, got {type(value).__name__}")
    if tuple(value.shape) != tuple(shape):
        raise CheckFailed(f"{what} should return shape {shape} (one value per entry), got {tuple(value.shape)}")
    return value


def _gumbel(fn) -> str:
    shape = (4, 64)
    noise = _as_tensor(fn(shape, torch.Generator().manual_seed(0)), "gumbel_noise(shape, generator)", shape)
    if not noise.is_floating_point():
        raise CheckFailed(f"the noise must be floating point, got {noise.dtype}")
    distinct = noise.unique().numel()
    if distinct == 1:
        raise CheckFailed("every entry holds the same value: that is one Gumbel sample for all tokens, a constant shift "
                          "of every confidence that changes no ranking. Draw one g_i per token: u = torch.rand(shape, ...)")
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
    return _gumbel(fn)


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
    variants = [
        (lambda tau, t, T: tau, "no annealing: the temperature stays τ at every step. It must shrink linearly, "
                                "τ·(1 − (t+1)/T), so that the noise fades and is exactly 0 at the last step"),
        (lambda tau, t, T: tau * (1 - t / T), "off by one: after step t the progress is (t+1)/T, not t/T, "
                                              "so the last step t = T−1 must give exactly 0"),
        (lambda tau, t, T: tau * (t + 1) / T, "annealed the wrong way round: the noise must be largest at the first step "
                                              "and fade to 0 at the last, τ·(1 − (t+1)/T)"),
    ]
    why = diagnose(got, {c: decoding.annealed_temperature(*c) for c in cases},
                   [({c: variant(*c) for c in cases}, message) for variant, message in variants],
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
    for case in cases:
        expected = decoding.annealed_temperature(*case)
        if not _close(got[case], expected):
            tau, t, T = case
            raise CheckFailed(f"annealed_temperature({tau}, t={t}, steps={T}): expected τ·(1 − (t+1)/T) = {expected:.4f}, "
                              f"got {got[case]:.4f}")
    raise AssertionError("unreachable")


@graded(1)
@quiet
def check_annealed_temperature(fn) -> str:
    """``fn(temperature, t, steps) -> float``, exactly ``decoding.annealed_temperature``."""
    return _annealed(fn)


# --------------------------------------------------------------------------- masked counts

N0 = torch.tensor([0, 1, 2, 5, 17, 40, 64])  # unknowns at the start, per image (0: nothing to decode)
ALL_STEPS = [(name, T, t) for name in SCHEDULES for T in range(1, 17) for t in range(T)]


def _at_least_one(n, n0, t, T):
    return torch.where(n0 > 0, n.clamp(min=1), n) if t < T - 1 else n


COUNT_VARIANTS = [
    (lambda g, t, T, n0: _at_least_one(torch.ceil(g((t + 1) / T) * n0.double()).long(), n0, t, T),
     "rounded up: the count is floor(γ((t+1)/T)·n₀), rounded down (torch.floor)"),
    (lambda g, t, T, n0: _at_least_one(torch.round(g((t + 1) / T) * n0.double()).long(), n0, t, T),
     "rounded to the nearest integer: the count is floor(γ((t+1)/T)·n₀), rounded down (torch.floor)"),
    (lambda g, t, T, n0: _at_least_one(torch.floor(g(t / T) * n0.double()).long(), n0, t, T),
     "off by one step: after step t the progress is r = (t+1)/T, not t/T (γ(0) = 1 would mask everything again)"),
    (lambda g, t, T, n0: torch.floor(g((t + 1) / T) * n0.double()).long(),
     "the count can drop to 0 before the last step: keep at least one token masked while t < T−1 "
     "(for an image with anything unknown), so that every one of the T steps has work to do"),
    (lambda g, t, T, n0: torch.floor(g((t + 1) / T) * n0.double()).long().clamp(min=1) if t < T - 1
     else torch.floor(g((t + 1) / T) * n0.double()).long(),
     "an image with nothing unknown (n₀ = 0) has nothing to mask: apply the 'at least one' rule only where n₀ > 0"),
    (lambda g, t, T, n0: _at_least_one(torch.floor((1 - g((t + 1) / T)) * n0.double()).long(), n0, t, T),
     "γ is the fraction still masked, not the fraction decoded: use γ((t+1)/T)·n₀, not (1 − γ)·n₀"),
    (lambda g, t, T, n0: _at_least_one(torch.floor(g(torch.tensor((t + 1) / T)) * n0).long(), n0, t, T),
     "off by one only where γ·n₀ is (almost) a whole number: float32 rounding. Call schedule((t + 1) / steps) with "
     "the Python float, which is computed in float64, and multiply by n0.double() before the floor"),
]


def _counts(fn) -> str:
    schedule = gamma("cosine")
    first = fn(schedule, 0, 8, N0.clone())
    _as_tensor(first, "masked_after_step(schedule, t, steps, n0)", tuple(N0.shape))
    if first.is_floating_point() or first.dtype == torch.bool:
        raise CheckFailed(f"return whole-number counts as an integer tensor (torch.long), got {first.dtype}: floor, then .long()")
    gammas = {name: gamma(name) for name in SCHEDULES}
    got = {(name, T, t): fn(gammas[name], t, T, N0.clone()).tolist() for name, T, t in ALL_STEPS}
    expected = {(name, T, t): decoding.masked_after_step(gammas[name], t, T, N0).tolist() for name, T, t in ALL_STEPS}
    def counts_of(variant):  # what that misconception gives at every (schedule, T, step)
        return lambda: {(name, T, t): variant(gammas[name], t, T, N0).tolist() for name, T, t in ALL_STEPS}

    why = diagnose(got, expected, [(counts_of(variant), message) for variant, message in COUNT_VARIANTS])
    if why is None:
        return ("exact for all six schedules, T = 1 … 16, every step, and n₀ from 0 to 64 "
                "(including at least one masked before the last step)")
    if why:
        raise CheckFailed(why)
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
    return _counts(fn)


# --------------------------------------------------------------------------- one decoding step


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
    out = fn(logits.clone(), current.clone(), mask.clone(), n0.clone(), t, steps, gamma(schedule), temperature, mask_id,
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


def _step_invariants(tokens, new_mask, current, mask, K: int, where: str):
    """What must hold after any step, whatever the counts: decided tokens stay, mask ids sit exactly in the new mask."""
    decided = ~mask
    if (new_mask & decided).any():
        raise CheckFailed(f"{where}: a known or already decoded token was masked again. Give every token that is not masked "
                          f"now the confidence +inf, so it is never among the least confident ones that get re-masked")
    if not torch.equal(tokens[decided], current[decided]):
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


def _keeps_decided(fn) -> str:
    K, N, steps, t = 8, 16, 6, 2
    for seed in range(3):
        current, _, mask, n0 = decoding_state([16, 11, 5], N, K, steps, t, "cosine", seed)
        logits = torch.randn(3, N, K, generator=torch.Generator().manual_seed(seed))
        tokens, new_mask = _call_step(fn, logits, current, mask, n0, t, steps, "cosine", 4.5, K, seed)
        _step_invariants(tokens, new_mask, current, mask, K, "with random logits")
    current, _, mask, n0 = decoding_state([16, 11, 5], N, K, steps, t, "cosine", 3)
    # Decided positions confidently predict a code other than their own: sampling there would overwrite them.
    other = torch.where(mask, 0, (current + 1) % K)
    logits = torch.nn.functional.one_hot(other, K).float() * 20.0
    tokens, new_mask = _call_step(fn, logits, current, mask, n0, t, steps, "cosine", 4.5, K, 3)
    _step_invariants(tokens, new_mask, current, mask, K, "where the model is sure a known token should be something else")
    # Decided positions are the least confident ones (uniform logits), masked ones are sure; no noise.
    logits = torch.where(mask.unsqueeze(-1), torch.nn.functional.one_hot(torch.zeros_like(current), K).float() * 20.0,
                         torch.zeros(3, N, K))
    tokens, new_mask = _call_step(fn, logits, current, mask, n0, t, steps, "cosine", 0.0, K, 4)
    _step_invariants(tokens, new_mask, current, mask, K, "where the known tokens' own predictions are the least confident")
    return "known and already decoded tokens keep their codes and are never re-masked; re-masked positions hold mask_id"


def _counts_in_step(fn) -> str:
    K, N, steps, t = 8, 16, 6, 2
    current, _, mask, n0 = decoding_state([16, 11, 5], N, K, steps, t, "cosine", 0)
    logits = torch.randn(3, N, K, generator=torch.Generator().manual_seed(0))
    tokens, new_mask = _call_step(fn, logits, current, mask, n0, t, steps, "cosine", 4.5, K, 0)
    got = new_mask.sum(1).tolist()
    expected = decoding.masked_after_step(gamma("cosine"), t, steps, n0).tolist()
    now = mask.sum(1)
    from_now = (f"the number of tokens kept masked must come from the unknowns at the start, not the ones still masked now: "
                f"with n₀ = {n0.tolist()} unknown at the start and {now.tolist()} masked now, step t = {t} of T = {steps} "
                f"keeps floor(γ((t+1)/T)·n₀) = {expected} masked; you kept {got}, computed from the tokens masked right "
                f"now, so the count shrinks far faster than the schedule says")
    why = diagnose(got, expected, [(decoding.masked_after_step(gamma("cosine"), t, steps, now).tolist(), from_now),
                                   (torch.floor(gamma("cosine")((t + 1) / steps) * now.double()).long().tolist(), from_now)])
    if why:
        raise CheckFailed(why)
    if why == "":
        raise CheckFailed(f"cosine, T = {steps}, step t = {t}, n₀ = {n0.tolist()}: expected masked_after_step(...) = {expected} "
                          f"tokens masked after the step, got {got}")
    for name in SCHEDULES:
        for steps in (1, 2, 3, 5, 8, 16):
            current, unknown, mask, n0 = decoding_state([16, 9, 1, 0], N, K, steps, 0, name, steps)
            start = current.clone()
            for t in range(steps):
                logits = torch.randn(4, N, K, generator=torch.Generator().manual_seed(100 * steps + t))
                where = f"schedule {name}, T = {steps}, step t = {t}"
                tokens, new_mask = _call_step(fn, logits, current, mask, n0, t, steps, name, 4.5, K, t)
                _step_invariants(tokens, new_mask, current, mask, K, where)
                got = new_mask.sum(1).tolist()
                expected = decoding.masked_after_step(gamma(name), t, steps, n0).tolist()
                if got != expected and t == steps - 1:
                    raise CheckFailed(f"{where} (the last step): no token may stay masked, every remaining one takes its "
                                      f"sample (n_(T−1) = 0); {got} are still masked")
                if got != expected:
                    raise CheckFailed(f"{where}, n₀ = {n0.tolist()}: expected {expected} tokens masked after the step, "
                                      f"got {got} (use masked_after_step with n₀, the unknowns at the start)")
                current, mask = tokens, new_mask
            if (current == K).any() or mask.any():
                raise CheckFailed(f"schedule {name}, T = {steps}: mask_id is left in the tokens after the last step")
            if not torch.equal(current[~unknown], start[~unknown]):
                raise CheckFailed(f"schedule {name}, T = {steps}: a known token changed during decoding")
    return "counts from n₀ at every step, for all six schedules and T = 1, 2, 3, 5, 8, 16; nothing masked at the end"


def _noise_in_step(fn) -> str:
    K, N, steps = 8, 16, 8
    current, _, mask, n0 = decoding_state([16, 12], N, K, steps, 0, "cosine", 0)
    logits = torch.zeros(2, N, K)  # every sample equally likely: only the noise can order the tokens
    picks, codes = set(), set()
    for seed in range(6):
        tokens, new_mask = _call_step(fn, logits, current, mask, n0, 0, steps, "cosine", 4.5, K, seed)
        picks.add(tuple(new_mask.flatten().tolist()))
        codes.update(tokens[mask & ~new_mask].tolist())
    if len(codes) == 1:
        raise CheckFailed("every decoded token got the same code although all codes were equally likely: sample from "
                          "p = softmax(logits) with torch.multinomial (and the generator) instead of taking the argmax")
    if len(picks) == 1:
        raise CheckFailed("which tokens get re-masked never changes with the random seed, although every confidence is the "
                          "same: add Gumbel noise drawn per token, g of shape (B, N), scaled by the annealed temperature. "
                          "One noise value for all tokens (or none) shifts every confidence equally and keeps the ranking")
    # Near the end (t = 14 of 16) the noise scale is τ/16: sure tokens (p ≈ 1) must beat unsure ones (p = 1/K).
    K, N, steps, t, temperature = 1024, 64, 16, 14, 4.5
    for seed in range(3):
        current, _, mask, n0 = decoding_state([64, 64, 64], N, K, steps, t, "cosine", seed)
        unsure = torch.zeros_like(mask)  # half of the tokens masked now: p = 1/K for every code
        for b in range(3):
            masked_positions = mask[b].nonzero().flatten()
            unsure[b, masked_positions[: len(masked_positions) // 2]] = True
        sure = torch.nn.functional.one_hot(torch.zeros_like(current), K).float() * 40.0
        logits = torch.where(unsure.unsqueeze(-1), torch.zeros(3, N, K), sure)
        tokens, new_mask = _call_step(fn, logits, current, mask, n0, t, steps, "cosine", temperature, K, seed)
        expected_count = decoding.masked_after_step(gamma("cosine"), t, steps, n0)
        if new_mask.sum(1).tolist() == expected_count.tolist() and not torch.equal(new_mask, unsure):
            scale = decoding.annealed_temperature(temperature, t, steps)
            raise CheckFailed(f"at step t = {t} of T = {steps} the noise must be almost gone: it is scaled by the annealed "
                              f"temperature τ·(1 − (t+1)/T) = {scale:.2f}, so tokens sampled with p ≈ 1 always beat tokens "
                              f"with p = 1/{K}. Yours re-masked sure tokens: is the temperature annealed? (The confidence is "
                              f"log p of the sampled code plus the noise.)")
    return "samples, per-token Gumbel noise that changes with the seed, and noise annealed away near the end"


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
    """Sampling, per-token Gumbel noise, and a temperature annealed towards 0."""
    return _noise_in_step(fn)


@graded(4)
@quiet
def check_decode_step(fn) -> str:
    """All three decode_step checks at once (what ``use_or_reference`` asks before using the answer)."""
    return "; ".join([_keeps_decided(fn), _counts_in_step(fn), _noise_in_step(fn)])
