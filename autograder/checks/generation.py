"""Checks for notebook 06, generation and guidance: the label dropout of training, classifier-free
guidance computed in one forward pass, and generation from an all-masked canvas.

The student's functions get plain arguments, so that the judge's worker can call them: the model is
a function of (tokens, labels). A crafted model stands in for the transformer. Its logits are a table
look-up per code and per label, so the conditional, the unconditional and a real class's logits all
differ, every call is recorded, and each usual mistake (``checks/variants.py``) gives an answer of
its own. The references are ``mvtm.drop_labels``, ``decoding.guided_logits`` and
``generate.generate_codes``; no check runs the shipped transformer.
"""

import torch

from autograder.checks.common import close, expect, fmt, quiet, tensor
from autograder.checks.variants import CANVAS, DROP, GUIDANCE, ONE_PASS
from autograder.core import CheckFailed, computed, diagnose, graded
from maskgit_lab import decoding, generate, mvtm
from maskgit_lab.schedules import gamma

CLASSES, CODES, TOKENS = 5, 12, 10  # the crafted model's C (its null class is C), K (its mask id is K) and N


class CraftedModel:
    """A stand-in for the conditional transformer, called as ``model(tokens (B, N), labels (B,))``.

    logits (B, N, K) = a row per code (the mask id K included) + the mean of another row per code over
    the image (the context: decided tokens change what the masked ones predict) + a row per label (the
    null class C included) + a row per position; ``labels=None`` is the null class, as for the real
    model. Every call's inputs are kept in ``calls``.
    """

    def __init__(self, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.per_code = torch.randn(CODES + 1, CODES, generator=generator)
        self.context = 4 * torch.randn(CODES + 1, CODES, generator=generator)
        self.per_label = 2 * torch.randn(CLASSES + 1, CODES, generator=generator)
        self.per_position = torch.randn(TOKENS, CODES, generator=generator)
        self.null_class, self.mask_id = CLASSES, CODES
        self.calls = []

    def __call__(self, tokens, labels=None):
        tokens = tensor(tokens, "the tokens given to the model").long()
        labels = torch.full(tokens.shape[:1], CLASSES) if labels is None else tensor(labels, "the labels given to the model")
        if tokens.dim() != 2 or tuple(labels.shape) != tokens.shape[:1]:
            raise CheckFailed(f"the model takes tokens (B, N) and labels (B,) with the same B; it got tokens of shape "
                              f"{tuple(tokens.shape)} and labels of shape {tuple(labels.shape)}")
        labels = labels.long()
        if ((labels < 0) | (labels > CLASSES)).any() or ((tokens < 0) | (tokens > CODES)).any():
            raise CheckFailed(f"the model got a label outside 0 … {CLASSES} (the null class is {CLASSES}) or a token "
                              f"outside 0 … {CODES}: labels {fmt(labels)}")
        self.calls.append((tokens.clone(), labels.clone()))
        context = self.context[tokens].mean(dim=1, keepdim=True)  # (B, 1, K)
        return self.per_code[tokens] + context + self.per_label[labels].unsqueeze(1) + self.per_position  # (B, N, K)


# --------------------------------------------------------------------------- label dropout

DROP_LABELS = torch.arange(4000) % CLASSES  # real classes only, each as often
DROP_RATES = (0.0, 0.3, 1.0)


def _share(share: float, p: float) -> str:
    """A share of dropped labels, in words robust to the draws: "p", "1 - p", "all or none" or its first digit."""
    if abs(share - p) < 0.04:
        return "p"
    if abs(share - (1 - p)) < 0.04:
        return "1 - p"
    return "all or none" if share in (0.0, 1.0) else f"{share:.1f}"


def _dropped(fn, labels: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    out = tensor(fn(labels.clone(), p, CLASSES, torch.Generator().manual_seed(seed)), "the labels after dropout")
    if tuple(out.shape) != tuple(labels.shape) or out.is_floating_point() or out.dtype == torch.bool:
        raise CheckFailed(f"drop_labels must return class ids of the labels' shape {tuple(labels.shape)} and dtype "
                          f"{labels.dtype}; got {tuple(out.shape)} {out.dtype}")
    return out.long()


def _drop_signature(fn) -> tuple:
    """What ``fn`` does to real labels: the share dropped at each p of DROP_RATES, what replaces them, whether a batch of
    8 is dropped all together (one coin for the whole batch)."""
    shares, values = [], set()
    for p in DROP_RATES:
        out = _dropped(fn, DROP_LABELS, p, 1)
        changed = out != DROP_LABELS
        shares.append(_share(changed.float().mean().item(), p))
        values |= set(out[changed].tolist())
    together = 0
    for seed in range(40):
        changed = _dropped(fn, DROP_LABELS[:8], 0.5, seed) != DROP_LABELS[:8]
        together += bool(changed.all() or not changed.any())
    return tuple(shares), "null" if values <= {CLASSES} else "a real class", together > 30


def _drop(fn) -> str:
    labels = DROP_LABELS[:16].clone()
    out = fn(labels, 0.5, CLASSES, torch.Generator().manual_seed(2))
    if not torch.equal(labels, DROP_LABELS[:16]):
        raise CheckFailed("drop_labels changed the labels it was given: return a new tensor "
                          "(labels.masked_fill(dropped, null_class), without the underscore)")
    tensor(out, "the labels after dropout")
    got = _drop_signature(fn)
    why = diagnose(got, _drop_signature(mvtm.drop_labels), computed(DROP, _drop_signature))
    if why:
        raise CheckFailed(why)
    if why == "":
        shares, values, together = got
        raise CheckFailed(f"over {len(DROP_LABELS)} labels, the share replaced at p_uncond = {DROP_RATES} should be p_uncond "
                          f"each time, by the null class {CLASSES}, one coin per label; yours: {shares}, replaced by "
                          f"{values}" + (", the whole batch at once" if together else ""))
    seeded = [_dropped(fn, DROP_LABELS, 0.5, seed) for seed in (3, 3, 4)]
    if not torch.equal(seeded[0], seeded[1]) or torch.equal(seeded[0], seeded[2]):
        raise CheckFailed("the dropout must come from the generator it is given: the same seed must drop the same labels, "
                          "another seed others (torch.rand(labels.shape, generator=generator))")
    return (f"each label replaced by the null class with probability p_uncond (p = {DROP_RATES}), one draw per label, "
            f"repeatable with a seeded generator")


@graded(2)
@quiet
def check_drop_labels(fn) -> str:
    """``fn(labels (B,), p_uncond, null_class, generator) -> (B,)``, as ``mvtm.drop_labels``."""
    return _drop(expect(fn, "drop_labels(labels, p_uncond, null_class, generator)"))


# --------------------------------------------------------------------------- guided logits

GUIDED = "guided_logits(model, tokens, labels, guidance, null_class)"
GUIDED_LABELS = torch.tensor([0, 3, 1, 4])  # class 0 among them: a null class of 0 changes some rows, not all


def guided_inputs(seed: int) -> tuple:
    """(a fresh crafted model, tokens (B, N) with some mask ids, labels (B,)) for one call of guided_logits."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(CODES + 1, (len(GUIDED_LABELS), TOKENS), generator=generator)
    return CraftedModel(seed), tokens, GUIDED_LABELS.clone()


def guided_answer(fn, guidance: float, seed: int = 0) -> tuple:
    """(``fn``'s guided logits (B, N, K), the model calls it made) on the crafted inputs of ``seed``."""
    model, tokens, labels = guided_inputs(seed)
    out = tensor(fn(model, tokens, labels, guidance, model.null_class), "the guided logits (B, N, K)")
    return out.detach(), model.calls


def _guided(fn) -> str:
    w = 3.0
    got, _ = guided_answer(fn, w)
    expected, _ = guided_answer(decoding.guided_logits, w)
    if got.shape != expected.shape:
        raise CheckFailed(f"the guided logits must have the shape of one model output, (B, N, K) = {tuple(expected.shape)}; "
                          f"got {tuple(got.shape)}")
    why = diagnose(got, expected, computed(GUIDANCE, lambda wrong: guided_answer(wrong, w)[0]), same=close)
    if why:
        raise CheckFailed(why)
    if why == "":
        model, tokens, labels = guided_inputs(0)
        unconditional = model(tokens)
        rows = [b for b in range(len(labels)) if close(got[b], unconditional[b])]
        if rows:
            raise CheckFailed(f"rows {rows} are the unconditional logits ℓ_u, as if their labels had been dropped: label "
                              f"dropout belongs to training only; at inference every image keeps its label")
        raise CheckFailed(f"with w = {w:g}: expected ℓ_u + w·(ℓ_c − ℓ_u) = {fmt(expected)}, got {fmt(got)}")
    for w in (0.0, 1.0, 1.5):
        if not close(guided_answer(fn, w)[0], guided_answer(decoding.guided_logits, w)[0]):
            raise CheckFailed(f"right with w = 3 but not with w = {w:g}: use the guidance scale you are given, "
                              f"ℓ_u + guidance·(ℓ_c − ℓ_u)")
    return ("ℓ_u + w·(ℓ_c − ℓ_u) for w = 0, 1, 1.5 and 3, with the labels on the conditional rows and the null class "
            "on the others")


def _one_pass(fn) -> str:
    _, calls = guided_answer(fn, 3.0)
    if not calls:
        raise CheckFailed("your guided_logits never called the model: compute ℓ_c and ℓ_u with model(tokens, labels)")
    why = diagnose(len(calls), 1, ONE_PASS)
    if why is None:
        return f"one forward pass of the model ({calls[0][0].shape[0]} rows)"
    raise CheckFailed(why or f"the model was called {len(calls)} times: call it once, on the 2B rows of "
                             f"torch.cat([tokens, tokens]) with torch.cat([labels, null])")


@graded(2)
@quiet
def check_guided_logits(fn) -> str:
    """``fn(model, tokens (B, N), labels (B,), guidance, null_class) -> (B, N, K)``: ℓ_u + w·(ℓ_c − ℓ_u)."""
    return _guided(expect(fn, GUIDED))


@graded(1)
@quiet
def check_guidance_one_pass(fn) -> str:
    """The model is called once per guided_logits call (the 2B rows of both halves together); silent about the values."""
    return _one_pass(expect(fn, GUIDED))


# --------------------------------------------------------------------------- generation from an empty canvas

CANVAS_LABELS, CANVAS_TEMPERATURE = torch.tensor([2, 0, 4]), 2.0
CANVAS_RUNS = ((0, 4), (1, 1), (2, 7))  # (seed, T): T = 1 decides every token from the first logits


def canvas_logits(model: CraftedModel, steps: int, seen: list):
    """The logits function of the canvas runs, ``logits(tokens, labels, t)``: the crafted model's logits divided
    by a sampling temperature falling from 3 to 0.5 over the T steps, so that a wrong t changes the codes; the
    t of every call is appended to ``seen``."""
    sampling = decoding.DecodeSettings(steps=steps, sample_temperature=0.5, first_sample_temperature=3.0)

    def logits(tokens, labels, t):
        seen.append(t)
        if not decoding.is_count(t) or not 0 <= t < steps:
            raise CheckFailed(f"logits(current, labels, t) takes the step t = 0 … {steps - 1} as an int; got {t!r}")
        return model(tokens, labels) / sampling.sample_temperature_at(t)

    return logits


def canvas_answer(fn, seed: int, steps: int) -> tuple:
    """(``fn``'s codes (B, N), the model's calls, the t of each step call, the t of each logits call) with the
    crafted model as the logits and the package's decode_step as the step."""
    model, steps_taken, logits_taken = CraftedModel(seed), [], []

    def step(logits, current, mask, n0, t, T, schedule, temperature, mask_id, generator=None):
        steps_taken.append(t)
        return decoding.decode_step(logits, current, mask, n0, t, T, schedule, temperature, mask_id, generator)

    codes = fn(canvas_logits(model, steps, logits_taken), CANVAS_LABELS.clone(), TOKENS, model.mask_id, steps,
               gamma("cosine"), CANVAS_TEMPERATURE, step, torch.Generator().manual_seed(seed))
    codes = tensor(codes, "the generated codes (B, N)")
    if tuple(codes.shape) != (len(CANVAS_LABELS), TOKENS) or codes.is_floating_point():
        raise CheckFailed(f"generate_codes must return integer codes of shape (B, N) = {(len(CANVAS_LABELS), TOKENS)}; "
                          f"got {tuple(codes.shape)} {codes.dtype}")
    return codes.long(), model.calls, steps_taken, logits_taken


def canvas_codes(fn) -> tuple:
    """``fn``'s codes on every run of CANVAS_RUNS."""
    return tuple(canvas_answer(fn, seed, steps)[0] for seed, steps in CANVAS_RUNS)


def _canvas(fn) -> str:
    got, expected = canvas_codes(fn), canvas_codes(generate.generate_codes)
    why = diagnose(got, expected, computed(CANVAS, canvas_codes),
                   same=lambda a, b: all(map(torch.equal, a, b)))
    if why:
        raise CheckFailed(why)
    if why == "":
        (seed, steps), mine, theirs = next((run, g, e) for run, g, e in zip(CANVAS_RUNS, got, expected) if not torch.equal(g, e))
        _, calls, steps_taken, logits_taken = canvas_answer(fn, seed, steps)
        if (mine == CODES).any():
            raise CheckFailed(f"tokens still hold the mask id {CODES} at the end: call the step for every t = 0 … T−1, each "
                              f"time on the tokens and mask the previous step returned")
        if steps_taken != list(range(steps)):
            raise CheckFailed(f"with T = {steps} the step must be called for t = 0 … {steps - 1}, in order; yours called it "
                              f"for t = {steps_taken}")
        if any(not torch.equal(labels, CANVAS_LABELS) for _, labels in calls):
            raise CheckFailed("the logits function must get the images' own labels at every step, logits(current, labels, t)")
        if logits_taken != list(range(steps)):
            raise CheckFailed(f"with T = {steps} the logits must be asked once per step with each step's own t, "
                              f"logits(current, labels, t) for t = 0 … {steps - 1} (the sampling temperature can change "
                              f"from step to step); yours asked for t = {logits_taken}")
        raise CheckFailed(f"with T = {steps}: expected the codes {fmt(theirs)}, got {fmt(mine)} (the generator you are "
                          f"given, passed to every step)")
    return (f"all {TOKENS} tokens masked at the start (n₀ = N), T steps of the given step on the tokens each returned, the "
            f"labels and the step's t at every step: the package's codes for T = 1, 4 and 7")


@graded(2)
@quiet
def check_generate_codes(fn) -> str:
    """``fn(logits, labels, num_tokens, mask_id, steps, schedule, temperature, step, generator) -> (B, N)``, as
    ``generate.generate_codes``."""
    return _canvas(expect(fn, "generate_codes(logits, labels, num_tokens, mask_id, steps, schedule, temperature, step, generator)"))
