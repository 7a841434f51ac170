"""Hidden checks: a few extra checks per notebook, kept out of the notebooks on purpose.

nbgrader's feedback shows every cell of the graded notebook, hidden tests included
(jupyter/nbgrader#917, #1363), so these live only here and only their points reach the student
(the summary says "hidden checks: 3/4"). The judge (autograder/judge/judge.py) calls them at grade time on
the functions exactly as the student's solution cells defined them.

A notebook's entry in ``HIDDEN`` lists (the student's function, the check called with it);
``PRELUDE`` names the locked cells besides the set-up cells that the checks after them rely on.
"""

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn import functional as F

from autograder.checks.common import tensor
from autograder.core import CheckFailed, graded


@graded(1)
def hidden_nearest_code_many(nearest_code) -> str:
    generator = torch.Generator().manual_seed(11)
    z, codebook = torch.randn(300, 8, generator=generator), torch.randn(40, 8, generator=generator) * 2
    got = tensor(nearest_code(z.clone(), codebook.clone()), "indices").long()
    if not torch.equal(got, torch.cdist(z, codebook).argmin(dim=1)):
        raise CheckFailed("wrong nearest codes on a larger random case")
    return "ok"


@graded(1)
def hidden_vq_losses_no_beta(vq_losses) -> str:
    generator = torch.Generator().manual_seed(12)
    z_e = torch.randn(3, 5, generator=generator).requires_grad_()
    z_q = torch.randn(3, 5, generator=generator).requires_grad_()
    loss = tensor(vq_losses(z_e, z_q, 0.0), "the loss")
    if not torch.allclose(loss.detach().reshape(()), F.mse_loss(z_q, z_e).detach(), rtol=1e-5):
        raise CheckFailed("wrong value with beta = 0")
    return "ok"


@graded(1)
def hidden_attention_without_batch(attention) -> str:
    generator = torch.Generator().manual_seed(21)
    q, k, v = torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator), torch.randn(6, 3, generator=generator)
    out, weights = attention(q, k, v)
    if not torch.allclose(tensor(out, "the output"), F.scaled_dot_product_attention(q, k, v), atol=1e-5):
        raise CheckFailed("wrong output for (N, d) inputs without batch axes and d_v ≠ d")
    return "ok"


@graded(1)
def hidden_multi_head_attention_more_heads(multi_head_attention) -> str:
    from maskgit_lab.attention import MultiHeadAttention

    D, H = 16, 4
    generator = torch.Generator().manual_seed(22)
    with torch.random.fork_rng(devices=[]):
        layer = MultiHeadAttention(D, H).eval()
    weights = [torch.randn(D, D, generator=generator) / math.sqrt(D) for _ in range(4)]
    with torch.no_grad():
        for linear, w in zip((layer.q_proj, layer.k_proj, layer.v_proj, layer.out_proj), weights):
            linear.weight.copy_(w)
            linear.bias.zero_()
        x = torch.randn(3, 7, D, generator=generator)
        expected = layer(x)
    got = tensor(multi_head_attention(x, *weights, H), "the output")
    if not (got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5)):
        raise CheckFailed("wrong output with 4 heads of width 4")
    return "ok"


@graded(1)
def hidden_mask_ratio_per_row(random_token_mask) -> str:
    ratio = torch.tensor([0.0, 0.3, 0.5, 1.0])
    mask = tensor(random_token_mask(4, 10, ratio, generator=torch.Generator().manual_seed(31)), "the mask")
    if mask.shape != (4, 10) or mask.sum(dim=1).tolist() != [1, 3, 5, 10]:
        raise CheckFailed("wrong counts with one ratio per row, including 0 and 1")
    return "ok"


@graded(1)
def hidden_loss_without_smoothing(masked_token_loss) -> str:
    generator = torch.Generator().manual_seed(32)
    logits, targets = torch.randn(2, 9, 5, generator=generator), torch.randint(0, 5, (2, 9), generator=generator)
    mask = torch.rand(2, 9, generator=generator) < 0.4
    got = tensor(masked_token_loss(logits, targets, mask, label_smoothing=0.0), "the loss")
    if not torch.allclose(got.reshape(()), F.cross_entropy(logits[mask], targets[mask]), atol=1e-5):
        raise CheckFailed("wrong loss without label smoothing")
    return "ok"


@graded(1)
def hidden_counts_every_schedule(masked_after_step) -> str:
    from maskgit_lab import decoding
    from maskgit_lab.schedules import SCHEDULES, gamma

    n0 = torch.tensor([0, 1, 7, 64])
    for name in SCHEDULES:
        for steps in (1, 3, 12):
            for t in range(steps):
                got = tensor(masked_after_step(gamma(name), t, steps, n0.clone()), "the counts").long()
                if not torch.equal(got, decoding.masked_after_step(gamma(name), t, steps, n0)):
                    raise CheckFailed("wrong counts for another schedule or number of steps")
    return "ok"


@graded(2)
def hidden_decode_loop(decode_step) -> str:
    from maskgit_lab import decoding
    from maskgit_lab.schedules import gamma

    B, N, K, steps = 3, 16, 6, 5
    generator = torch.Generator().manual_seed(41)
    tokens = torch.randint(0, K, (B, N), generator=generator)
    mask = torch.zeros(B, N, dtype=torch.bool)
    mask[0, :16], mask[1, 3:9] = True, True  # image 2 has nothing to decode
    n0 = mask.sum(dim=1)
    current = tokens.masked_fill(mask, K)
    for t in range(steps):
        logits = torch.randn(B, N, K, generator=generator)
        current, new_mask = decode_step(logits, current, mask, n0, t, steps, gamma("square"), 2.0, K, generator)
        expected = decoding.masked_after_step(gamma("square"), t, steps, n0)
        if not torch.equal(new_mask.sum(dim=1).long(), expected) or (new_mask & ~mask).any():
            raise CheckFailed("wrong mask during a whole decoding loop")
        mask = new_mask
    if (current == K).any():
        raise CheckFailed("tokens still masked after the last step")
    if not torch.equal(current[2], tokens[2]):
        raise CheckFailed("an image without unknown tokens changed")
    return "ok"


@graded(1)
def hidden_token_mask_other_factors(token_mask_from_pixels) -> str:
    from maskgit_lab.inpaint import token_mask_from_pixels as reference

    generator = torch.Generator().manual_seed(51)
    known = torch.rand(3, 32, 32, generator=generator) > 0.02
    for factor in (4, 16):
        got = tensor(token_mask_from_pixels(known.clone(), factor), "the token mask")
        if not torch.equal(got.bool(), reference(known, factor)):
            raise CheckFailed("wrong token mask for another downsample factor")
    return "ok"


@graded(1)
def hidden_paste_batch(paste_known) -> str:
    generator = torch.Generator().manual_seed(52)
    generated, original = torch.rand(3, 3, 8, 8, generator=generator), torch.rand(3, 3, 8, 8, generator=generator)
    known = torch.rand(3, 8, 8, generator=generator) > 0.5
    got = tensor(paste_known(generated, original, known), "the images")
    if not torch.equal(got, torch.where(known.unsqueeze(1), original, generated)):
        raise CheckFailed("wrong pasting on another batch")
    return "ok"


@graded(1)
def hidden_drop_labels_other_null(drop_labels) -> str:
    labels = torch.arange(3000) % 20
    dropped = tensor(drop_labels(labels.clone(), 0.5, 20, torch.Generator().manual_seed(61)), "the labels").long()
    changed = dropped != labels
    if not (0.45 < changed.float().mean().item() < 0.55) or not (dropped[changed] == 20).all():
        raise CheckFailed("wrong dropout with 20 classes and p_uncond = 0.5")
    if not torch.equal(tensor(drop_labels(labels.clone(), 0.0, 20, None), "the labels").long(), labels):
        raise CheckFailed("labels dropped with p_uncond = 0")
    return "ok"


@graded(1)
def hidden_guidance_one_image(guided_logits) -> str:
    from autograder.checks.generation import CraftedModel

    model, labels = CraftedModel(62), torch.tensor([2])
    tokens = torch.randint(0, 13, (1, 10), generator=torch.Generator().manual_seed(62))  # codes 0 … 11 and the mask id 12
    cond, uncond = model(tokens, labels), model(tokens)
    for w in (0.0, 1.0, 5.0):
        got = tensor(guided_logits(model, tokens.clone(), labels.clone(), w, model.null_class), "the logits")
        if not (got.shape == cond.shape and torch.allclose(got, uncond + w * (cond - uncond), atol=1e-5)):
            raise CheckFailed("wrong guided logits for one image")
    return "ok"


@graded(1)
def hidden_generate_other_steps(generate_codes) -> str:
    from autograder.checks.generation import CraftedModel, canvas_logits
    from maskgit_lab import decoding, generate
    from maskgit_lab.schedules import gamma

    labels = torch.tensor([3])
    for steps in (1, 12):
        got, expected = (tensor(fn(canvas_logits(CraftedModel(63), steps, []), labels.clone(), 10, 12, steps, gamma("square"),
                                   1.0, decoding.decode_step, torch.Generator().manual_seed(63)), "the codes")
                         for fn in (generate_codes, generate.generate_codes))
        if not torch.equal(got.long(), expected):
            raise CheckFailed("wrong codes for another number of steps or schedule")
    return "ok"


@dataclass(frozen=True)
class Hidden:
    answer: str  # the student's function it is called with
    check: Callable


HIDDEN = {
    "01_vq_tokenization": [Hidden("nearest_code", hidden_nearest_code_many), Hidden("vq_losses", hidden_vq_losses_no_beta)],
    "02_multi_head_attention": [Hidden("scaled_dot_product_attention", hidden_attention_without_batch),
                                Hidden("multi_head_attention", hidden_multi_head_attention_more_heads)],
    "03_mvtm_training": [Hidden("random_token_mask", hidden_mask_ratio_per_row),
                         Hidden("masked_token_loss", hidden_loss_without_smoothing)],
    "04_iterative_decoding": [Hidden("masked_after_step", hidden_counts_every_schedule), Hidden("decode_step", hidden_decode_loop)],
    "05_inpainting_and_fid": [Hidden("token_mask_from_pixels", hidden_token_mask_other_factors),
                              Hidden("paste_known", hidden_paste_batch)],
    "06_generation_and_guidance": [Hidden("drop_labels", hidden_drop_labels_other_null),
                                   Hidden("guided_logits", hidden_guidance_one_image),
                                   Hidden("generate_codes", hidden_generate_other_steps)],
}
# Locked cells, besides the set-up cells, that the checks after them rely on.
PRELUDE = {"04_step_helpers"}


def hidden_max(notebook: str) -> float:
    return float(sum(h.check.points for h in HIDDEN.get(notebook, [])))
