"""Checks for notebook 03 (MVTM training): the γ schedules, exact-count masks, the masked loss.

Every check takes the student's function, runs it on tiny inputs (milliseconds), compares it
with ``maskgit_lab`` and, when they differ, names the likely misconception.
"""

import math

import torch
from torch.nn import functional as F

from autograder.checks.common import article, expect, fmt, quietly, tensor
from autograder.checks.variants import (GAMMA_ENDPOINTS, GAMMA_LAWS, GAMMA_SLIPS, LABEL_SMOOTHING, MASK_COUNTS,
                                        MASK_DRAWS, MASKED_LOSS, ranked_mask)
from autograder.core import CheckFailed, applied, computed, diagnose, graded, name_each
from maskgit_lab.masking import mask_counts, random_token_mask
from maskgit_lab.schedules import SCHEDULES
from maskgit_lab.schedules import gamma as reference_gamma

ATOL = 1e-5


# --- γ(r) ------------------------------------------------------------------------------------


def _schedule_values(gamma_fn, name: str, r: torch.Tensor) -> torch.Tensor:
    """``gamma_fn(name)(r)`` as a float64 tensor of r's shape, or CheckFailed saying what is off."""
    schedule = quietly(expect(gamma_fn, "gamma(name)"), name)
    if not callable(schedule):
        raise CheckFailed(f"gamma({name!r}) should return a function of r (e.g. a lambda or an inner def); "
                          f"got {article(type(schedule).__name__)}")
    try:
        out = quietly(schedule, r)
    except (TypeError, ValueError) as err:
        raise CheckFailed(f"gamma({name!r})(r) failed on a tensor r ({err}). Use torch functions (torch.cos, "
                          f"torch.sqrt, torch.arccos), not math.*, so γ works on a whole tensor at once") from None
    tensor(out, f"the result of gamma({name!r})(r) on a tensor r", "Use torch functions (torch.cos, torch.sqrt, "
           "torch.arccos), not math.*")
    if out.shape != r.shape:
        raise CheckFailed(f"gamma({name!r})(r) should work element by element: r has shape {tuple(r.shape)}, "
                          f"the result has shape {tuple(out.shape)}")
    return out.detach().double()


@graded(1)
def check_gamma_endpoints(gamma_fn):
    """Every schedule starts at 1, ends at 0, stays in [0, 1] and never increases."""
    r = torch.linspace(0, 1, 101)
    for name in SCHEDULES:
        values = _schedule_values(gamma_fn, name, r)
        start, end = values[0].item(), values[-1].item()
        why = diagnose((start, end), (1.0, 0.0), GAMMA_ENDPOINTS,
                       same=lambda a, b: abs(a[0] - b[0]) < 1e-3 and abs(a[1] - b[1]) < 1e-3)
        if why == GAMMA_ENDPOINTS[0].words:
            raise CheckFailed(
                f"gamma({name!r}) goes from {start:.3g} at r=0 up to {end:.3g} at r=1. γ(r) is the fraction of tokens "
                f"still MASKED: all of them at the start (γ(0) = 1), none at the end (γ(1) = 0). {why}"
            )
        if abs(start - 1) > ATOL or abs(end) > ATOL:
            raise CheckFailed(f"gamma({name!r}) should be normalised: expected γ(0) = 1 and γ(1) = 0, "
                              f"got γ(0) = {start:.4g} and γ(1) = {end:.4g}." + (f" {why}" if why else ""))
        if values.min() < -ATOL or values.max() > 1 + ATOL:
            raise CheckFailed(f"gamma({name!r}) leaves [0, 1] (min {values.min():.4g}, max {values.max():.4g}): "
                              f"a fraction of masked tokens must lie between 0 and 1")
        rises = (values[1:] - values[:-1]) > ATOL
        if rises.any():
            i = int(rises.nonzero()[0])
            raise CheckFailed(
                f"gamma({name!r}) increases from γ({r[i]:.2f}) = {values[i]:.4g} to γ({r[i + 1]:.2f}) = {values[i + 1]:.4g}. "
                f"A schedule never increases: a token revealed during decoding stays revealed."
            )
    return f"all {len(SCHEDULES)} schedules run from γ(0) = 1 down to γ(1) = 0"


def _wrong_law_hint(name: str, r: torch.Tensor, got: torch.Tensor, want: torch.Tensor) -> str:
    """What the student's values look like instead (another law, 1 − γ, a classic slip)."""
    variants = applied(GAMMA_LAWS, name, r) + (applied([GAMMA_SLIPS[name]], r) if name in GAMMA_SLIPS else [])
    why = diagnose(got, want, variants, same=lambda a, b: torch.allclose(a, b, atol=1e-4))
    return why or "Compare your formula with the table above."  # None: off by more than float64 allows, less than 1e-4


@graded(2)
def check_gamma_laws(gamma_fn):
    """The six laws match maskgit_lab.schedules at interior points, for float32 and float64 r."""
    for dtype in (torch.float64, torch.float32):
        r = torch.tensor([[0.1, 0.25, 0.5], [0.6, 0.75, 0.9]], dtype=dtype)  # 2-D: must act element by element
        for name in SCHEDULES:
            got = _schedule_values(gamma_fn, name, r).flatten()
            want = reference_gamma(name)(r.double()).flatten()
            if not torch.allclose(got, want, atol=1e-4 if dtype == torch.float32 else ATOL):
                points = ", ".join(f"{v:.2f}" for v in r.flatten().tolist())
                raise CheckFailed(
                    f"gamma({name!r}) at r = {points} ({str(dtype).replace('torch.', '')}): expected {fmt(want)}, "
                    f"got {fmt(got)}. {_wrong_law_hint(name, r.double().flatten(), got, want)}"
                )
    return "cosine, linear, square, cubic, sqrt and arccos all match γ(r) of the paper"


# --- exact-count masks -----------------------------------------------------------------------


def _mask(fn, batch_size, num_tokens, ratio, seed=0) -> torch.Tensor:
    out = quietly(expect(fn, "random_token_mask(batch_size, num_tokens, ratio, generator=None)"), batch_size, num_tokens,
                  ratio, generator=torch.Generator().manual_seed(seed))
    tensor(out, "the mask random_token_mask returns")
    if out.shape != (batch_size, num_tokens):
        raise CheckFailed(f"random_token_mask({batch_size}, {num_tokens}, ...) should return shape (B, N) = "
                          f"{(batch_size, num_tokens)}; got {tuple(out.shape)}")
    if out.dtype != torch.bool:
        raise CheckFailed(f"random_token_mask should return a bool mask (True = masked); got dtype {out.dtype}. "
                          f"A comparison such as `ranks < counts` gives bool directly.")
    return out


def _describe_ratio(ratio) -> str:
    return f"ratio={ratio:g}" if isinstance(ratio, float) else f"ratio={[round(v, 3) for v in ratio.tolist()]}"


MASK_CASES = [
    (8, 16, 0.5),
    (5, 20, 0.33),  # 6.6 tokens: floor gives 6, rounding or ceil 7
    (4, 16, 0.04),  # 0.64 tokens: at least one
    (3, 16, 1.0),
    (4, 20, torch.tensor([0.12, 0.47, 0.93, 0.33], dtype=torch.float64)),  # one ratio per row
]


def _count_signature(fn) -> tuple:
    """How ``fn``'s counts behave on the crafted cases: ("exact", counts per case) when a seed repeats them and a
    float ratio gives every row the same count; otherwise ("random", whether more tokens are masked at ratio 0.9
    than at 0.1)."""
    counts = []
    for B, N, ratio in MASK_CASES:
        first, second = (_mask(fn, B, N, ratio, seed).sum(dim=1) for seed in (0, 1))
        if not torch.equal(first, second) or (isinstance(ratio, float) and first.unique().numel() > 1):
            low, high = (_mask(fn, 200, 20, r, seed=2).sum(dim=1).double().mean().item() for r in (0.1, 0.9))
            return "random", high - low > 10  # 2 vs 18 tokens when the ratio is followed
        counts.append(first.tolist())
    return "exact", counts


@graded(2)
def check_mask_counts(fn):
    """Exactly max(1, floor(ratio·N)) True per row, True = masked, for float and per-row ratios."""
    got = _count_signature(fn)
    why = diagnose(got, _count_signature(random_token_mask), computed(MASK_DRAWS, _count_signature))
    wrong = [why] if why else name_each(got, MASK_COUNTS, lambda ways: _count_signature(ranked_mask(ways)))
    if wrong is None:
        return "exactly max(1, floor(ratio·N)) masked tokens in every row, for a float ratio and one ratio per row"
    why = " ".join(wrong)
    for B, N, ratio in MASK_CASES:
        counts, want = _mask(fn, B, N, ratio).sum(dim=1), mask_counts(ratio, B, N)
        if not torch.equal(counts, want):
            summary = (f"random_token_mask(B={B}, N={N}, {_describe_ratio(ratio)}): expected {want.tolist()} masked "
                       f"tokens per row, got {counts.tolist()}.")
            raise CheckFailed(f"{summary} {why or 'The count per row is max(1, floor(ratio·N)), never more than N.'}")
    raise CheckFailed(why or "The count per row changes with the seed; it must be max(1, floor(ratio·N)) every time.")


@graded(1)
def check_mask_randomness(fn):
    """The generator alone decides the mask; rows differ; every position is equally likely."""
    first, again = _mask(fn, 6, 16, 0.5, seed=3), _mask(fn, 6, 16, 0.5, seed=3)
    if not torch.equal(first, again):
        raise CheckFailed("Two calls with generators seeded alike gave different masks. Draw every random number "
                          "from the `generator` argument (torch.rand(..., generator=generator)), so that a seed "
                          "reproduces the mask.")
    if torch.equal(first, _mask(fn, 6, 16, 0.5, seed=4)):
        raise CheckFailed("Generators with different seeds gave the same mask: the mask must be random, "
                          "drawn from the `generator` you are given (do not seed inside the function).")
    if (first == first[0]).all():
        raise CheckFailed("Every row masks the same positions: draw fresh random scores for each row, "
                          "so every image in the batch gets its own mask.")
    many = _mask(fn, 400, 8, 0.25, seed=5).double()
    # Judged against the share of tokens this answer masks, so that a wrong count (check_mask_counts) is not blamed here.
    frequency, share = many.mean(dim=0), many.mean().item()
    if (frequency - share).abs().max() > 0.1:
        raise CheckFailed(f"Some positions are masked far more often than others: over 400 rows your mask covers "
                          f"{share:.0%} of the tokens, so each of the N = 8 positions should be masked in about {share:.0%} "
                          f"of the rows; got {fmt(frequency, n=len(frequency))}. Choose the masked positions uniformly "
                          f"at random (e.g. argsort of uniform scores), not the first ones.")
    return "seeded, different per row, and uniform over positions"


# --- the loss on masked tokens ---------------------------------------------------------------


def _loss_case(seed: int = 0):
    """Logits (B=2, N=7, K=5) where visible tokens are confidently wrong, so scoring them shows."""
    g = torch.Generator().manual_seed(seed)
    B, N, K = 2, 7, 5
    targets = torch.randint(K, (B, N), generator=g)
    logits = torch.randn(B, N, K, generator=g)
    mask = torch.tensor([[1, 0, 1, 0, 0, 1, 0], [0, 1, 0, 0, 0, 0, 0]], dtype=torch.bool)  # 3 and 1 masked
    wrong = (targets + 1) % K
    logits[~mask] = logits[~mask] + 8 * F.one_hot(wrong[~mask], K)  # visible: sure of a wrong code
    return logits, targets, mask


def _loss(fn, logits, targets, mask, label_smoothing) -> torch.Tensor:
    logits = logits.clone().requires_grad_(True)
    out = quietly(expect(fn, "masked_token_loss(logits, targets, mask, label_smoothing)"), logits, targets.clone(),
                  mask.clone(), label_smoothing)
    tensor(out, "the loss masked_token_loss returns (so that training can call .backward())",
           "Do not call .item() inside it.")
    if out.numel() != 1:
        raise CheckFailed(f"masked_token_loss should return one number (the mean over masked tokens); "
                          f"got shape {tuple(out.shape)}")
    return out.reshape(()), logits  # compare with value(out): students may compute in float64


@graded(2)
def check_masked_token_loss(fn):
    """Cross-entropy averaged over the masked tokens only, differentiable, no gradient to visible tokens."""
    logits, targets, mask = _loss_case()
    K = logits.shape[-1]
    got, leaf = _loss(fn, logits, targets, mask, 0.0)
    value = got.detach().double()
    want = F.cross_entropy(logits[mask], targets[mask]).double()
    per_token = F.cross_entropy(logits.reshape(-1, K), targets.reshape(-1), reduction="none").view(mask.shape)
    variants = applied(MASKED_LOSS, per_token, mask)
    why = diagnose(value, want, variants, same=lambda a, b: bool(torch.isclose(a, b.double(), atol=1e-4)))
    if why is not None:
        raise CheckFailed(f"With label_smoothing=0: expected {want:.4f}, got {value:.4f}. "
                          + (why or "The loss is the mean of −log p(target) over the masked positions, "
                                    "e.g. F.cross_entropy(logits[mask], targets[mask])."))
    if not got.requires_grad:
        raise CheckFailed("The loss has no gradient: keep it a torch tensor computed from logits "
                          "(no .item(), .detach() or numpy), or training cannot backpropagate.")
    (grad,) = torch.autograd.grad(got, leaf)
    if grad[~mask].abs().max() > 1e-7:
        raise CheckFailed("Changing the logits of a visible token changes your loss: only masked positions may count.")
    return "mean cross-entropy over the masked tokens only"


@graded(1)
def check_label_smoothing(fn):
    """``label_smoothing`` is PyTorch's: target (1 − ε)·one-hot + ε/K over all K classes.

    Every token is masked here, so which tokens count (check_masked_token_loss's property) cannot change the value.
    """
    for seed, eps in ((1, 0.1), (2, 0.3)):
        logits, targets, mask = _loss_case(seed)
        mask = torch.ones_like(mask)
        got, _ = _loss(fn, logits, targets, mask, eps)
        value = got.detach().double()
        want = F.cross_entropy(logits[mask], targets[mask], label_smoothing=eps).double()
        why = diagnose(value, want, applied(LABEL_SMOOTHING, logits[mask], targets[mask], eps),
                       same=lambda a, b: bool(torch.isclose(a, b.double(), atol=1e-4)))
        if why is None:
            continue
        summary = f"With label_smoothing={eps}: expected {want:.4f}, got {value:.4f}."
        if why:
            raise CheckFailed(f"{summary} {why}")
        raise CheckFailed(f"{summary} Smoothing mixes the one-hot target with the uniform distribution: "
                          f"target = (1 − ε)·one-hot + ε/K, loss = −Σ_k target_k · log p_k, averaged over masked tokens.")
    return "label smoothing as in torch.nn.functional.cross_entropy"
