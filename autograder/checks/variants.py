"""Every known misconception of the course's notebooks that a check recognises, in one place, one section a notebook.

Each ``Variant`` has a short name (the tests refer to it), what a student with that one mistake
computes, and the words the student reads, in the notebook's notation. A check runs the student's
function and each variant on the same crafted inputs, chosen so that the variants give different
answers there, and names the variant whose answer the student's matches
(``autograder.core.diagnose``); a mistake no variant explains gets expected against got.

Where one function has several properties that can each be wrong, they come as ``PARTS``: a dict
property → (the right way, the variants that do that one property another way), and the check
names every property that is wrong (``autograder.core.name_each``), so that two mistakes in one
function give two named messages. A new notebook adds its section here, in the same form.

Two mistakes that compute the same thing on every input cannot be told apart and share one
variant: one Gumbel value for all tokens (or one per image) and no noise at all rank the tokens
identically, since adding one number to every confidence of a row changes no ranking.
"""

import math

import torch
from torch.nn import functional as F

from autograder.core import Variant
from maskgit_lab import decoding
from maskgit_lab.schedules import SCHEDULES
from maskgit_lab.schedules import gamma as reference_gamma


def registry(namespace: dict = None) -> list:
    """Every ``Variant`` in ``namespace`` (this module's by default; a check module's: the ones it uses), from its
    lists, its ``PARTS`` dicts and its dicts by name. The tests' index of the misconceptions."""
    found = []
    for value in list((globals() if namespace is None else namespace).values()):
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
        for item in items:
            if isinstance(item, tuple) and not isinstance(item, Variant) and len(item) == 2 and isinstance(item[1], list):
                item = item[1]  # a property of a PARTS dict: (the right way, its variants)
            found += [v for v in (item if isinstance(item, list) else [item]) if isinstance(v, Variant)]
    return list({id(v): v for v in found}.values())  # a list shared by two parts counts once


# =========================================================================== notebook 01: VQ tokenization


def squared_distances(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(M, K): ‖z_i − e_k‖² for every row and code, by brute force."""
    return ((z[:, None, :] - codebook[None, :, :]) ** 2).sum(-1)


DOT_PRODUCT = ("the dot product z·e_k alone is not the distance. ‖z − e_k‖² = ‖z‖² − 2 z·e_k + ‖e_k‖², and ‖e_k‖² "
               "differs from code to code, so keep that term (‖z‖² may be dropped: it is the same for every code)")
SMALLEST = "you returned the smallest distances themselves, not the indices of the nearest codes: use .argmin(dim=1) " \
           "instead of .min(dim=1).values"

NEAREST_CODE = [  # wrong(z (M, C), codebook (K, C)) -> what nearest_code returns
    Variant("farthest code", lambda z, c: squared_distances(z, c).argmax(dim=1),
            "that is the *farthest* code for every row: use argmin of the distances, not argmax"),
    Variant("dot product", lambda z, c: (z @ c.t()).argmax(dim=1), DOT_PRODUCT),
    Variant("dot product without the codes' lengths", lambda z, c: (-2 * z @ c.t()).argmin(dim=1), DOT_PRODUCT),
    Variant("argmin over the vectors", lambda z, c: squared_distances(z, c).argmin(dim=0),
            "one index per code, not one per row of z: the argmin ran over the wrong axis. In the (M, K) distance "
            "table take argmin over dim=1, the codes"),
    Variant("distance table", squared_distances,
            "you returned the (M, K) table of distances; the answer is, for each row of z, *which* code is nearest: "
            "take the argmin over the codebook axis (dim=1)"),
    Variant("smallest distances", lambda z, c: squared_distances(z, c).min(dim=1).values, SMALLEST),
    Variant("smallest unsquared distances", lambda z, c: squared_distances(z, c).min(dim=1).values.sqrt(), SMALLEST),
]

STRAIGHT_THROUGH = [  # wrong(z_e, z_q) -> the output; recognised by its value and where its gradient goes
    Variant("values of z_e", lambda z_e, z_q: z_e,
            "the values of z_e: in the forward pass the decoder must see the quantised vectors z_q; only "
            "the gradient comes from z_e"),
    Variant("no gradient at all", lambda z_e, z_q: z_q.detach(),
            "the output carries no gradient at all, so no gradient reaches z_e and the encoder never learns: detach "
            "only the difference, z_e + (z_q − z_e).detach()"),
    Variant("gradient stops at the codebook", lambda z_e, z_q: z_q,
            "the value is right, but no gradient reaches z_e, so the encoder never learns. Returning z_q stops the "
            "gradient at the codebook, and z_e + (z_q − z_e) without .detach() cancels it; write z_e + (z_q − z_e).detach()"),
    Variant("gradient into the codebook", lambda z_e, z_q: z_q + z_e - z_e.detach(),
            "the decoder's gradient also flows into z_q, i.e. into the codebook; the codes should move only through "
            "the codebook loss. Put z_q inside the detached part: z_e + (z_q − z_e).detach()"),
]

VQ_LOSS = [  # wrong(mse, β, number of entries) -> the loss's value
    Variant("one term", lambda mse, beta, n: mse,
            "(1 × MSE): one term is missing: the total is the codebook term plus β times the commitment term, and both "
            "terms have the same value ‖z_e − z_q‖² (they differ only in which side is detached)"),
    Variant("no codebook term", lambda mse, beta, n: beta * mse,
            "(β × MSE): the codebook term is missing: only β · commitment is there"),
    Variant("no β", lambda mse, beta, n: 2 * mse, "(2 × MSE): β is missing: the commitment term must be multiplied by β"),
    Variant("β on both terms", lambda mse, beta, n: 2 * beta * mse,
            "(2β × MSE): β should weight only the commitment term, not the codebook term too"),
    Variant("squared differences summed", lambda mse, beta, n: (1 + beta) * mse * n,
            "(a sum): you summed the squared differences; take their mean (F.mse_loss does)"),
]

VQ_LOSS_GRADIENTS = [  # wrong(unit, β) -> (∂L/∂z_e, ∂L/∂z_q), unit = ∂ mean((z_e − z_q)²) / ∂z_e; the value is right
    Variant("nothing detached", lambda u, beta: ((1 + beta) * u, -(1 + beta) * u),
            "the value is right, but nothing is detached: the codebook term also pushes the encoder and the commitment "
            "term also moves the codebook. Use ‖sg[z_e] − z_q‖² + β‖z_e − sg[z_q]‖² (sg = .detach())"),
    Variant("detaches swapped", lambda u, beta: (u, -beta * u),
            "the value is right, but the detaches are swapped (or β weights the wrong term): the gradient reaching z_e "
            "has weight 1 and the one reaching z_q weight β. The codebook term ‖sg[z_e] − z_q‖² must move only z_q "
            "(detach z_e), and β‖z_e − sg[z_q]‖² only z_e (detach z_q)"),
    Variant("no gradient to z_e", lambda u, beta: (0 * u, -(1 + beta) * u),
            "no gradient reaches z_e: the commitment term must pull the encoder output towards its code, so inside it "
            "detach z_q, not z_e"),
    Variant("no gradient to z_q", lambda u, beta: ((1 + beta) * u, 0 * u),
            "no gradient reaches z_q: the codebook term must pull the code towards the encoder output, so inside it "
            "detach z_e, not z_q"),
    Variant("commitment moves the codebook", lambda u, beta: (beta * u, -(1 + beta) * u),
            "z_e gets the right gradient, but z_q's is off: the commitment term also moves the codebook; detach z_q "
            "inside it"),
    Variant("codebook term pushes the encoder", lambda u, beta: ((1 + beta) * u, -u),
            "z_q gets the right gradient, but z_e's is off: the codebook term also pushes the encoder; detach z_e "
            "inside it"),
]

# =========================================================================== notebook 02: multi-head attention

SDPA_WEIGHTS = {  # the attention weights, property by property: wrong = the way, used as softmax(scores / scale);
    # the words name d_head ({d}) and its root ({root}) as the check's inputs have them
    "scale": (math.sqrt, [
        Variant("not scaled", lambda d: 1.0, "the scores are not scaled: divide q·kᵀ by sqrt(d_head) = sqrt({d}) before the "
                                             "softmax, or large dot products make the softmax nearly one-hot"),
        Variant("divided by d", lambda d: d, "the scores are divided by d_head = {d}; divide by its square root, "
                                             "sqrt(d_head) = {root:g}"),
        Variant("multiplied by sqrt d", lambda d: 1 / math.sqrt(d),
                "the scores are multiplied by sqrt(d_head); divide by it instead"),
    ]),
    "softmax axis": (-1, [
        Variant("softmax over the queries", -2, "the softmax runs over the wrong axis: each query's weights over the "
                                                "keys must sum to 1, so take the softmax over the last axis (dim=-1)"),
    ]),
    "softmax": (torch.softmax, [
        Variant("no softmax", lambda scores, dim: scores,
                "these are the scores before the softmax; apply .softmax(dim=-1) to them"),
    ]),
}

SDPA_OUTPUT = [  # wrong(weights, v) -> the output, when the weights are right
    Variant("weights transposed", lambda w, v: w.transpose(-2, -1) @ v,
            "the weights are right, but the output uses them transposed: output = weights @ v, so row i (query i) "
            "mixes the values with its own weights"),
]

SPLIT_HEADS = [  # wrong(x (B, N, D), H) -> (B, H, N, D/H)
    Variant("split by reshape", lambda x, H: x.reshape(x.shape[0], H, x.shape[1], x.shape[2] // H),
            "reshaping (B, N, D) straight to (B, H, N, D/H) mixes different tokens into one row; view as (B, N, H, D/H) "
            "first, then .transpose(1, 2)"),
    Variant("heads interleaved", lambda x, H: x.view(x.shape[0], x.shape[1], x.shape[2] // H, H).permute(0, 3, 1, 2),
            "the heads take every H-th channel instead of a contiguous block: head h must own channels h·D/H … "
            "(h+1)·D/H − 1, so view as (B, N, H, D/H), not (B, N, D/H, H)"),
]

MERGE_HEADS = [  # wrong(heads (B, H, N, Dh)) -> (B, N, D)
    Variant("merge by reshape", lambda h: h.reshape(h.shape[0], h.shape[2], h.shape[1] * h.shape[3]),
            "merge must undo split exactly, but reshaping (B, H, N, D/H) straight to (B, N, D) mixes tokens; first "
            ".transpose(1, 2) back to (B, N, H, D/H), then reshape"),
    Variant("merge interleaved", lambda h: h.permute(0, 2, 3, 1).reshape(h.shape[0], h.shape[2], h.shape[1] * h.shape[3]),
            "the heads are merged in the wrong order: channel j of head h must land at position h·D/H + j, so "
            "transpose to (B, N, H, D/H), not (B, N, D/H, H)"),
]

MULTI_HEAD = {  # the layer, property by property: the way is the knob of checks.attention.by_hand
    "output projection": (True, [Variant("no output projection", False,
                                         "the output projection is missing: after merging the heads, project with w_o "
                                         "(x @ w_o.T); it is the only place where the heads' results are mixed")]),
    "weight layout": (True, [Variant("weights not transposed", False,
                                     "the weights are stored like nn.Linear.weight, (out, in): project with x @ w.T, "
                                     "not x @ w (the same holds for w_o)")]),
    "scale": (None, [Variant("scaled by the full width", "D",
                             "the scores are divided by sqrt(D); each head has width D/H, so divide by sqrt(D/H)")]),
    "merge": (True, [Variant("heads merged without transposing", False,
                             "the heads are merged in the wrong order: transpose (B, H, N, D/H) back to (B, N, H, D/H) "
                             "before reshaping to (B, N, D)")]),
    "heads": ("H", [Variant("a single head", 1,
                            "that is attention with a single head of width D: split q, k and v into num_heads heads, "
                            "attend in each, then merge")]),
}

# =========================================================================== notebook 03: MVTM training

GAMMA_ENDPOINTS = [  # wrong: (γ(0), γ(1)) as that mistake computes them; recognised by check_gamma_endpoints
    Variant("schedule rises from 0 to 1", (0.0, 1.0), "You returned the fraction already revealed (1 − γ)."),
    Variant("arccos starts at π/2", (math.pi / 2, 0.0), "arccos(0) = π/2, so divide by π/2 to make γ(0) = 1."),
    Variant("cosine ends at −1", (1.0, -1.0), "It goes below 0: check the factor inside the cosine (π/2·r, not π·r)."),
]

GAMMA_LAWS = [  # wrong(name, r (float64)) -> γ(r) as that mistake computes it
    Variant("fraction revealed", lambda name, r: 1 - reference_gamma(name)(r),
            "These are 1 − γ: the fraction revealed, not the fraction masked."),
] + [Variant(f"the {other} law", lambda name, r, other=other: reference_gamma(other)(r),
             f"These are the values of the {other!r} schedule: check which formula goes with which name.")
     for other in SCHEDULES]

GAMMA_SLIPS = {  # one classic slip per law: name -> Variant, wrong(r)
    "square": Variant("(1 − r)²", lambda r: (1 - r) ** 2,
                      "(1 − r)² is a different curve from 1 − r²: square the progress r, then subtract from 1."),
    "cubic": Variant("(1 − r)³", lambda r: (1 - r) ** 3,
                     "(1 − r)³ is a different curve from 1 − r³: cube the progress r, then subtract from 1."),
    "sqrt": Variant("√(1 − r)", lambda r: torch.sqrt(1 - r), "√(1 − r) is a different curve from 1 − √r."),
    "cosine": Variant("cos(π·r)", lambda r: torch.cos(math.pi * r), "cos(π·r) reaches −1; the cosine schedule is cos(π/2 · r)."),
    "arccos": Variant("arccos not normalised", lambda r: torch.arccos(r),
                      "arccos(r) must be divided by π/2 so that γ(0) = 1."),
}

MASKED_LOSS = [  # wrong(per-token losses (B, N), mask (B, N)) -> the loss
    Variant("all tokens", lambda per_token, mask: per_token.mean(),
            "You averaged over ALL tokens. Visible tokens are given to the model, so scoring them teaches it to copy "
            "its input; keep only the positions where mask is True."),
    Variant("divided by all tokens", lambda per_token, mask: (per_token * mask).sum() / mask.numel(),
            "You zeroed the visible tokens but still divided by all B·N tokens; divide by the number of masked tokens."),
    Variant("masked losses summed", lambda per_token, mask: per_token[mask].sum(),
            "You summed over the masked tokens; take their mean, so the loss does not grow with the number of masked "
            "tokens."),
    Variant("visible tokens", lambda per_token, mask: per_token[~mask].mean(),
            "You scored the VISIBLE tokens: True in mask marks the tokens to predict."),
    Variant("mean per image", lambda per_token, mask: torch.stack([per_token[b][mask[b]].mean()
                                                                   for b in range(len(mask))]).mean(),
            "You averaged per image first and then over images; average over all masked tokens of the batch together, "
            "so every masked token counts once."),
]


def _smoothed_on_others(logits, targets, eps):
    K = logits.shape[-1]
    others = (1 - F.one_hot(targets, K)) * eps / (K - 1)
    return -(((1 - eps) * F.one_hot(targets, K) + others) * logits.log_softmax(-1)).sum(-1).mean()


LABEL_SMOOTHING = [  # wrong(logits (M, K), targets (M,), ε) -> the loss over masked tokens
    Variant("smoothing ignored", lambda logits, targets, eps: F.cross_entropy(logits, targets),
            "That is the loss without smoothing: label_smoothing was ignored (pass it on, e.g. "
            "F.cross_entropy(..., label_smoothing=label_smoothing))."),
    Variant("smoothing over the others", _smoothed_on_others,
            "You spread ε over the K − 1 wrong classes; PyTorch's label smoothing (the one training uses) spreads it "
            "over all K classes: target = (1 − ε)·one-hot + ε/K."),
]

# exact-count masks: max(1, floor(ratio·N)) tokens in every row, property by property; the ways: "marks" (the
# ranked mask -> the mask returned), "ratio" (ratio (B,) -> the ratio used), "rounding" a torch function, "at least" int.


def _ratios(ratio, B: int) -> torch.Tensor:
    return torch.as_tensor(ratio, dtype=torch.float64).expand(B)


MASK_COUNTS = {
    "marks": (lambda masked: masked, [
        Variant("kept tokens marked True", lambda masked: ~masked,
                "That is N minus the expected count: your True marks the tokens that are KEPT. True must mean masked, "
                "and the ratio is the fraction masked."),
    ]),
    "ratio": (lambda ratio: ratio, [
        Variant("ratio read as the fraction kept", lambda ratio: 1 - ratio,
                "The counts do not follow the ratio: you mask (1 − ratio)·N tokens, as if the ratio were the fraction "
                "KEPT. The ratio is the fraction MASKED: mask max(1, floor(ratio·N)) tokens."),
        Variant("one ratio for every row", lambda ratio: ratio[:1].expand(len(ratio)),
                "Each row has its own ratio when ratio is a tensor of shape (B,); compute one count per row, "
                "counts = max(1, floor(ratio·N)) of shape (B,)."),
    ]),
    "rounding": (torch.floor, [
        Variant("mask ratio rounded up", torch.ceil, "You rounded ratio·N up; use floor(ratio·N), like the decoding "
                                                     "schedule does."),
        Variant("mask ratio rounded to nearest", torch.round,
                "You rounded ratio·N to the nearest integer; use floor(ratio·N), like the decoding schedule does."),
    ]),
    "at least": (1, [
        Variant("no token masked for a small ratio", 0,
                "floor(ratio·N) is 0 for a small ratio, but every row needs at least one masked token, or the loss has "
                "nothing to score: count = max(1, floor(ratio·N))."),
    ]),
}


def ranked_mask(ways: dict):
    """random_token_mask as an answer doing each property of ``MASK_COUNTS`` the way ``ways`` says."""

    def mask(B, N, ratio, generator=None):
        counts = ways["rounding"](ways["ratio"](_ratios(ratio, B)) * N).long().clamp(min=ways["at least"], max=N)
        scores = torch.rand(B, N, generator=generator)  # (B, N)
        return ways["marks"](scores.argsort(dim=1).argsort(dim=1) < counts.unsqueeze(1))

    return mask


def _coin_flip(B, N, ratio, generator=None):
    return torch.rand(B, N, generator=generator, dtype=torch.float64) < _ratios(ratio, B).unsqueeze(1)


def _ratio_redrawn(B, N, ratio, generator=None):
    drawn = torch.rand(B, generator=generator)  # what training does before calling it, done again inside
    return ranked_mask({"marks": lambda m: m, "ratio": lambda r: r, "rounding": torch.floor, "at least": 1})(
        B, N, drawn, generator)


MASK_DRAWS = [  # wrong(B, N, ratio, generator) -> (B, N) bool: counts that are not a function of the ratio
    Variant("coin flip per token", _coin_flip,
            "The count changes from row to row and follows the ratio only on average: a coin flip per token "
            "(torch.rand(...) < ratio) masks ratio·N tokens only on average. Mask EXACTLY max(1, floor(ratio·N)) tokens "
            "in every row, e.g. the lowest ranks of random scores."),
    Variant("ratio drawn inside", _ratio_redrawn,
            "The counts do not follow the ratio you are given: with ratio 0.1 and ratio 0.9 your rows mask about as "
            "many tokens. The function must not draw a ratio of its own (training draws it and passes it in): mask "
            "max(1, floor(ratio·N)) tokens with the `ratio` argument."),
]


# =========================================================================== notebook 04: iterative decoding
# --------------------------------------------------------------------------- g, § 1

GUMBEL_NOISE = [  # wrong: how many distinct values the noise of shape (4, 64) holds; recognised by check_gumbel_noise
    Variant("one Gumbel sample for all tokens", 1,
            "every entry holds the same value: that is one Gumbel sample for all tokens, a constant shift of every "
            "confidence that changes no ranking. Draw one g_i per token: u = torch.rand(shape, ...)"),
]

# --------------------------------------------------------------------------- τ_t, § 2

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

# --------------------------------------------------------------------------- n_t, § 3
# The count n_t = floor(γ((t+1)/T)·n₀), at least 1 while t < T−1 where n₀ > 0, property by property. The way of
# each: "law" (g, t, T, lift) -> the fraction kept masked; "precision" (lift, times): how r enters γ and how the
# fraction meets n₀; "rounding" a torch function; "at least one" (n, n0, t, T) -> n.


def at_least_one(n, n0, t, T):
    return torch.where(n0 > 0, n.clamp(min=1), n) if t < T - 1 else n


FLOAT64 = (float, lambda fraction, n0: fraction * n0.double())  # schedule((t + 1) / steps) * n0.double()

COUNTS = {
    "law": (lambda g, t, T, lift: g(lift((t + 1) / T)), [
        Variant("counts off by one", lambda g, t, T, lift: g(lift(t / T)),
                "off by one step: after step t the progress is r = (t+1)/T, not t/T (γ(0) = 1 would mask everything again)"),
        Variant("1 - gamma", lambda g, t, T, lift: 1 - g(lift((t + 1) / T)),
                "γ is the fraction still masked, not the fraction decoded: use γ((t+1)/T)·n₀, not (1 − γ)·n₀"),
        Variant("counts ignore the schedule", lambda g, t, T, lift: 1 - lift((t + 1) / T),
                "your count does not follow the schedule: it falls linearly, (1 − (t+1)/T)·n₀, whatever γ is. The "
                "schedule decides how many stay masked: floor(schedule((t + 1) / steps)·n₀)"),
    ]),
    "precision": (FLOAT64, [
        Variant("counts in float32", (lambda r: torch.tensor(r, dtype=torch.float32), lambda fraction, n0: fraction * n0),
                "off by one only where γ·n₀ is (almost) a whole number: float32 rounding. Call schedule((t + 1) / steps) "
                "with the Python float, which is computed in float64, and multiply by n0.double() before the floor"),
    ]),
    "rounding": (torch.floor, [
        Variant("counts rounded up", torch.ceil, "rounded up: the count is floor(γ((t+1)/T)·n₀), rounded down (torch.floor)"),
        Variant("counts rounded to nearest", torch.round,
                "rounded to the nearest integer: the count is floor(γ((t+1)/T)·n₀), rounded down (torch.floor)"),
    ]),
    "at least one": (at_least_one, [
        Variant("counts drop to 0", lambda n, n0, t, T: n,
                "the count can drop to 0 before the last step: keep at least one token masked while t < T−1 "
                "(for an image with anything unknown), so that every one of the T steps has work to do"),
        Variant("at least one also where n0 = 0", lambda n, n0, t, T: n.clamp(min=1) if t < T - 1 else n,
                "an image with nothing unknown (n₀ = 0) has nothing to mask: apply the 'at least one' rule only where "
                "n₀ > 0"),
    ]),
}


def counted(ways: dict):
    """masked_after_step(schedule, t, steps, n0) as an answer doing each property of ``COUNTS`` the way ``ways`` says."""
    lift, times = ways["precision"]

    def count(g, t, T, n0):
        n = ways["rounding"](times(ways["law"](g, t, T, lift), n0)).long()
        return ways["at least one"](n, n0, t, T)

    return count


STEP_COUNTS = {  # the count inside decode_step: of which tokens γ is a fraction, and what the count counts
    "tokens counted": (lambda n0, mask: n0, [
        Variant("counts from the current mask", lambda n0, mask: mask.sum(dim=1),
                "the number of tokens kept masked must come from the unknowns at the start, not the ones still masked "
                "now: n = masked_after_step(schedule, t, steps, n0), with n0 as given, not mask.sum(1). γ((t+1)/T) is a "
                "fraction of the ORIGINAL n₀; applied to the tokens masked now, the fractions multiply and the count "
                "shrinks far faster than the schedule says"),
        Variant("counts of all tokens", lambda n0, mask: torch.full_like(n0, mask.shape[1]),
                "γ((t+1)/T) is a fraction of the image's unknown tokens n₀, not of all N tokens: known tokens are never "
                "masked, so an image with few unknowns must not keep more masked than it had. n = "
                "masked_after_step(schedule, t, steps, n0)"),
    ]),
    "what is counted": (lambda kept, n0: kept, [
        Variant("counts of decoded tokens", lambda kept, n0: n0 - kept,
                "you re-mask as many tokens as should be DECODED by now, n₀ − n_t: the count is of the tokens that stay "
                "masked after step t, n = masked_after_step(schedule, t, steps, n0), and exactly that many are re-masked"),
    ]),
}

# --------------------------------------------------------------------------- one step, § 4
# The noise scale τ_t a step uses: (τ, t, T, schedule) -> a float.


def annealed(tau, t, T, g):
    return decoding.annealed_temperature(tau, t, T)


NOISE_SCALES = [
    Variant("noise not annealed", lambda tau, t, T, g: tau,
            "the noise does not fade: it keeps the same strength τ at every step, so even the last step re-masks sure "
            "tokens. Scale g_i by τ_t = annealed_temperature(temperature, t, steps) = τ·(1 − (t+1)/T), not by temperature"),
    Variant("noise annealed the wrong way", lambda tau, t, T, g: tau * (t + 1) / T,
            "the noise grows instead of fading: it is weak at the first step and strongest at the last. Scale g_i by "
            "τ_t = annealed_temperature(temperature, t, steps) = τ·(1 − (t+1)/T), with this step's t"),
    Variant("noise grows from 0", lambda tau, t, T, g: tau * t / T,
            "the noise grows instead of fading: scaled by τ·t/T it is 0 at the first step and strongest at the last. "
            "Scale g_i by τ_t = annealed_temperature(temperature, t, steps) = τ·(1 − (t+1)/T)"),
    Variant("noise annealed off by one", lambda tau, t, T, g: tau * (1 - t / T),
            "the noise is not 0 at the last step: it is scaled by τ·(1 − t/T), which gives τ/T at t = T−1. Use "
            "τ_t = annealed_temperature(temperature, t, steps) = τ·(1 − (t+1)/T)"),
    Variant("noise follows the schedule", lambda tau, t, T, g: tau * float(g((t + 1) / T)),
            "your noise follows the mask schedule, τ·γ((t+1)/T): where γ is small the noise vanishes and where it is "
            "near 1 the noise keeps its full strength, whatever the step. The annealing is linear in the step, the "
            "same for every schedule: τ_t = annealed_temperature(temperature, t, steps) = τ·(1 − (t+1)/T)"),
    Variant("noise follows 1 - gamma", lambda tau, t, T, g: tau * (1 - float(g((t + 1) / T))),
            "your noise grows as the schedule falls: scaled by 1 − γ((t+1)/T), the fraction already decoded, it is "
            "weakest at the first step and has its full strength τ at the last. Scale g_i by "
            "τ_t = annealed_temperature(temperature, t, steps) = τ·(1 − (t+1)/T)"),
]


def buggy_step(confidence="log p", noise="per token", scale=annealed, sample="multinomial", rank="ascending"):
    """decoding.decode_step with some things done another way, as a student would write it.

    confidence: "log p" (right), "p" (the raw probability), "max p" (the most likely code's, not
    the sample's), "logit" (the sample's logit, not normalised); noise: "per token" or "none";
    scale: the noise scale (τ, t, T, schedule) -> τ_t, ``annealed`` (right) or one of ``NOISE_SCALES``;
    sample: "multinomial" or "argmax"; rank: "ascending" (right: the least confident are re-masked) or "descending".
    """

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
            c = c + scale(temperature, t, steps, schedule) * decoding.gumbel_noise((B, N), generator)
        c = c.masked_fill(~mask, math.inf)
        n = decoding.masked_after_step(schedule, t, steps, n0)
        ranks = c.argsort(dim=1, descending=rank == "descending").argsort(dim=1)
        new_mask = ranks < n.unsqueeze(1)
        return torch.where(mask, sampled, current).masked_fill(new_mask, mask_id), new_mask

    return step


STEP = {  # recognised by check_decode_step_noise from what each re-masks on its crafted inputs; ways: buggy_step's
    "sample": ("multinomial", [
        Variant("sample argmax", "argmax",
                "every decoded token got the same code although all codes were equally likely: sample ŝ_i from "
                "p_i = softmax(logits) with torch.multinomial (and the generator) instead of taking the argmax"),
    ]),
    "noise": ("per token", [
        Variant("no per-token noise", "none",
                "you rank the tokens without the annealed noise: c_i must be log p_i(ŝ_i) + τ_t·g_i, with "
                "g = gumbel_noise((B, N), generator), one g_i per token, and τ_t = annealed_temperature(temperature, t, "
                "steps). Without it, which tokens get re-masked never changes with the random seed, although every "
                "confidence is the same. One noise value for all tokens (or none) shifts every confidence equally and "
                "keeps the ranking"),
    ]),
    "confidence": ("log p", [
        Variant("confidence is p", "p",
                "your confidence is the probability p_i(ŝ_i), not its logarithm: p lies between 0 and 1, so even the "
                "small noise of a late step outweighs the model's certainty and sure tokens (p ≈ 1) get re-masked before "
                "unsure ones (p = 1/K). Score c_i = log p_i(ŝ_i) + τ_t·g_i: log_softmax(-1), then gather the sample's entry"),
        Variant("confidence of the argmax", "max p",
                "your confidence is the probability of the most likely code, max_k p_i(k), not of the code you sampled: "
                "a token whose sample ŝ_i is an unlikely code must be among the first re-masked. Score the sample, "
                "c_i = log p_i(ŝ_i) = log_probs.gather(-1, sampled.unsqueeze(-1))"),
        Variant("confidence is the logit", "logit",
                "your confidence is the sample's logit, not its log-probability: logits equal log p only up to a "
                "constant that differs from position to position, so positions are compared on different scales. Take "
                "logits.log_softmax(-1) first, then gather the sample's entry: c_i = log p_i(ŝ_i) + τ_t·g_i"),
    ]),
    "scale": (annealed, NOISE_SCALES),
    "rank": ("ascending", [
        Variant("most confident re-masked", "descending",
                "you re-mask the MOST confident tokens: the n_t re-masked must be the least confident ones. "
                "ranks = c.argsort(dim=1).argsort(dim=1) (ascending, 0 = least confident), new mask = "
                "ranks < n.unsqueeze(1). (With the ranking reversed, the +inf given to decided tokens puts them first "
                "in line to be re-masked)"),
    ]),
}

PROTECTION = [  # recognised by check_decode_step_keeps_decided; wrong: (decided re-masked when least sure, when most sure)
    Variant("decided tokens compete", (True, False),
            "a known or already decoded token was re-masked: it competed with the tokens masked now and was among the "
            "least confident. Give every token that is not masked now the confidence +inf "
            "(c.masked_fill(~mask, float('inf'))), so it is never among the n_t re-masked"),
    Variant("decided tokens get -inf", (True, True),
            "known and already decoded tokens were re-masked first, even where the model was sure of them: they get "
            "the LOWEST confidence. Give them +inf, not −inf: c.masked_fill(~mask, float('inf'))"),
]

# =========================================================================== notebook 05: inpainting


def _unknown_share(known: torch.Tensor, f: int) -> torch.Tensor:
    """(B, (S/f)²): the share of unknown pixels in each token's f×f patch, row by row."""
    return F.avg_pool2d((~known).float().unsqueeze(1), f).flatten(1)


PARTLY = ("A token whose patch is only PARTLY unknown must be unknown too: if ANY pixel of the patch is unknown, the "
          "token's code was computed from the gray fill and cannot be trusted (max-pool the unknown pixels, or check "
          "`not patch.all()`).")

TOKEN_MASK = [  # wrong(known (B, S, S), f, right answer (B, N)) -> (B, N) bool
    Variant("known tokens marked", lambda known, f, want: ~want,
            "Your mask is the opposite: True must mark the UNKNOWN tokens, the ones decoding has to predict (known "
            "pixels are True in `known`)."),
    Variant("all pixels unknown", lambda known, f, want: _unknown_share(known, f) > 1 - 1e-6, PARTLY),
    Variant("most pixels unknown", lambda known, f, want: _unknown_share(known, f) > 0.5, PARTLY),
    Variant("grid transposed", lambda known, f, want: want.view(len(want), known.shape[1] // f, -1).transpose(1, 2).flatten(1),
            "Your token grid is transposed. The mask is indexed [b, row, column]; token (row i, column j) is number "
            "i·(S/f) + j, row by row like the tokenizer."),
]

PASTE = [  # wrong(generated, original, known) -> (B, 3, S, S)
    Variant("pasted the wrong way round", lambda generated, original, known: torch.where(known.unsqueeze(1), generated, original),
            "You pasted the wrong way round: where a pixel is KNOWN the output must show the original, and only the "
            "hole (known = False) takes the generated pixels."),
    Variant("generated unchanged", lambda generated, original, known: generated,
            "You returned the generated image unchanged: paste the known pixels back from the original, so only the "
            "hole differs from the input."),
    Variant("original returned", lambda generated, original, known: original,
            "You returned the original image: the hole (known = False) must take the generated pixels."),
]

# =========================================================================== notebook 06: generation and guidance
# --------------------------------------------------------------------------- label dropout, § 1


def _dropped_where(coins):
    """A drop_labels that replaces the labels where ``coins(labels, p, generator)`` is True by the null class."""
    return lambda labels, p, null, generator=None: labels.masked_fill(coins(labels, p, generator), null)


DROP = [  # wrong(labels (B,), p_uncond, null_class, generator) -> (B,)
    Variant("labels kept with probability p_uncond",
            _dropped_where(lambda labels, p, generator: torch.rand(labels.shape, generator=generator) >= p),
            "your dropout replaces a label with probability 1 − p_uncond: p_uncond is the share trained WITHOUT a label "
            "(the null class), so drop where torch.rand(labels.shape, generator=generator) < p_uncond"),
    Variant("dropped to a real class", lambda labels, p, null, generator=None: labels.masked_fill(
        torch.rand(labels.shape, generator=generator) < p, 0),
        "dropped labels must become the null class, the extra id null_class = C that no image has; you used a real "
        "class, so the model never learns an unconditional prediction and guidance has nothing to contrast"),
    Variant("one coin for the whole batch",
            _dropped_where(lambda labels, p, generator: (torch.rand((), generator=generator) < p).expand(labels.shape)),
            "the whole batch loses its labels or keeps them all: draw one coin per label, "
            "torch.rand(labels.shape, generator=generator) < p_uncond"),
    Variant("p_uncond hard-coded", _dropped_where(lambda labels, p, generator: torch.rand(labels.shape, generator=generator) < 0.1),
            "the share of dropped labels does not follow p_uncond: it stays near 0.1 whatever p_uncond is. Use the "
            "p_uncond you are given"),
]

# --------------------------------------------------------------------------- guided logits, § 2


def _halves(model, tokens, labels, null):
    """(ℓ_c, ℓ_u) from one pass of 2B rows, labels first: the two halves guided_logits combines."""
    both = model(torch.cat([tokens, tokens]), torch.cat([labels, torch.full_like(labels, null)]))  # (2B, N, K)
    return both.chunk(2)


def _combined(combine):
    """A guided_logits that makes both halves right and combines them as ``combine(cond, uncond, w)``."""
    return lambda model, tokens, labels, w, null: combine(*_halves(model, tokens, labels, null), w)


def _guided(cond, uncond, w):
    return uncond + w * (cond - uncond)


GUIDANCE = [  # wrong(model, tokens (B, N), labels (B,), guidance, null_class) -> (B, N, K); check_guided_logits
    Variant("guidance sign reversed", _combined(lambda c, u, w: u - w * (c - u)),
            "the guidance points away from the label: ℓ_u − w·(ℓ_c − ℓ_u). Guided logits are ℓ_u + w·(ℓ_c − ℓ_u), "
            "so that w > 1 goes further in the direction the label adds"),
    Variant("guidance halves swapped", _combined(lambda c, u, w: c + w * (u - c)),
            "the conditional and unconditional halves are swapped: ℓ_c + w·(ℓ_u − ℓ_c). The first B rows of the pass "
            "carry the labels (ℓ_c), the last B the null class (ℓ_u); combine them as ℓ_u + w·(ℓ_c − ℓ_u)"),
    Variant("guidance on probabilities", _combined(lambda c, u, w: u.softmax(-1) + w * (c.softmax(-1) - u.softmax(-1))),
            "you mixed probabilities, softmax(ℓ_u) + w·(softmax(ℓ_c) − softmax(ℓ_u)): for w > 1 that goes below 0 and "
            "is no distribution. Guidance works on the logits, ℓ_u + w·(ℓ_c − ℓ_u); the step takes the softmax itself"),
    Variant("unconditional half with a real class",
            lambda model, tokens, labels, w, null: _combined(_guided)(model, tokens, labels, w, 0),
            "your unconditional half used class 0, a real class: the null class is the extra id null_class (= C) that "
            "training gave the dropped labels; torch.full_like(labels, null_class)"),
    Variant("labels dropped at inference",
            lambda model, tokens, labels, w, null: _combined(_guided)(model, tokens, torch.full_like(labels, null), w, null),
            "the conditional half never saw the labels (both halves got the null class), so the result is the "
            "unconditional ℓ_u: pass the images' labels for the first B rows. Label dropout is for training only"),
    Variant("unconditional half never computed", lambda model, tokens, labels, w, null: model(tokens, labels),
            "you returned the conditional logits ℓ_c: the unconditional half ℓ_u was never computed. Run the model once "
            "on 2B rows, the labels and then null_class, and return ℓ_u + w·(ℓ_c − ℓ_u)"),
]

ONE_PASS = [  # the number of model calls in one guided_logits call; recognised by check_guidance_one_pass
    Variant("two forward passes", 2,
            "you ran the model twice, once per half: batch both halves into ONE pass of 2B rows, "
            "model(torch.cat([tokens, tokens]), torch.cat([labels, null])), then split the result with .chunk(2)"),
]

# --------------------------------------------------------------------------- generation from an empty canvas, § 3


def canvas_loop(start="mask id", logits_once=False, n0_now=False):
    """generate.generate_codes with one thing done another way: ``start`` ("mask id", or "code 0" for a canvas of
    code 0 with every token marked masked), the logits of the empty canvas at every step, or n₀ recounted each step."""

    def generate_codes(logits, labels, num_tokens, mask_id, steps, schedule, temperature, step, generator=None):
        B = labels.shape[0]
        current = torch.full((B, num_tokens), mask_id if start == "mask id" else 0)
        mask = torch.ones(B, num_tokens, dtype=torch.bool)
        first, n0 = logits(current, labels, 0), mask.sum(dim=1)
        for t in range(steps):
            scores = first if logits_once or t == 0 else logits(current, labels, t)
            counts = mask.sum(dim=1) if n0_now else n0
            current, mask = step(scores, current, mask, counts, t, steps, schedule, temperature, mask_id, generator)
        return current

    return generate_codes


CANVAS = [  # wrong: a generate_codes(logits, labels, num_tokens, mask_id, steps, schedule, temperature, step, generator)
    Variant("canvas of code 0", canvas_loop(start="code 0"),
            "the first step saw code 0 everywhere, not [MASK]: the canvas must hold mask_id at every position, "
            "torch.full((B, num_tokens), mask_id), so the model knows every token is unknown"),
    Variant("logits of the empty canvas only", canvas_loop(logits_once=True),
            "every step used the logits of the empty canvas: call logits(current, labels, t) inside the loop, on the tokens "
            "the previous step returned, so each step sees what was decided before it"),
    Variant("n0 recounted every step", canvas_loop(n0_now=True),
            "n₀ must be counted once, before the loop (N for every image: all tokens are unknown at the start); you "
            "passed the tokens masked now, so the counts shrink far faster than the schedule says"),
]
