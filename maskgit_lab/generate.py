"""Class-conditional generation: MaskGIT's decoding from an empty canvas (Chang et al. 2022, Sec. 4.1).

Every one of the N tokens starts masked (n₀ = N), so the schedule decides the whole picture:
how many tokens the first step commits, with nothing to go on but the label, and how many each
later step adds beside them. T = 1 samples all N tokens at once, each without seeing the others,
and gives confetti; a few steps let later tokens agree with the earlier ones. The label enters
through classifier-free guidance (``decoding.guided_logits``).

``GENERATION`` (in ``decoding``, beside the inpainting default) is the course's one default for it.
``generate_codes`` is the same loop with plain arguments, the twin of notebook 06's exercise.
````labels_like_test`` draws the classes of a sample in the test set's proportions.
"""

from typing import Callable, Optional, Union

import torch
from tqdm.auto import tqdm

from maskgit_lab.classes import NUM_CLASSES
from maskgit_lab.decoding import GENERATION, DecodeSettings, decode_step, iterative_decode


def empty_canvas(batch: int, num_tokens: int, device="cpu"):
    """(tokens, token_mask) for ``batch`` images with every one of ``num_tokens`` tokens unknown."""
    tokens = torch.zeros(batch, num_tokens, dtype=torch.long, device=device)  # overwritten by [MASK]
    return tokens, torch.ones(batch, num_tokens, dtype=torch.bool, device=device)


def generate_codes(logits: Callable, labels: torch.Tensor, num_tokens: int, mask_id: int, steps: int, schedule: Callable,
                   temperature: float, step: Callable = decode_step, generator: Optional[torch.Generator] = None):
    """Codes (B, N) for the classes ``labels`` (B,), decoded from an all-masked canvas in T = ``steps`` steps.

    The loop of ``iterative_decode`` written with plain arguments (notebook 06's exercise): ``logits(tokens,
    labels, t)`` gives the (B, N, K) logits step t sees (guided, and divided by that step's sampling
    temperature), ``step`` is called as ``decode_step`` is, with γ = ``schedule``. ``generate`` makes the
    same codes through ``iterative_decode``.
    """
    current, mask = empty_canvas(labels.shape[0], num_tokens, labels.device)
    current = current.masked_fill(mask, mask_id)
    n0 = mask.sum(dim=1)  # (B,) = N: every token is unknown at the start
    for t in range(steps):
        current, mask = step(logits(current, labels, t), current, mask, n0, t, steps, schedule, temperature, mask_id,
                             generator)
    return current


def check_generator_pair(tokenizer, model, labelled: bool):
    if labelled and not model.conditional:
        raise ValueError("this transformer is unconditional: generating a class needs a conditional one "
                         "(train-mvtm --conditional true), e.g. the shipped data/checkpoints/mvtm-cond.pt")
    if (tokenizer.cfg.num_codes, tokenizer.cfg.num_tokens) != (model.cfg.num_codes, model.cfg.num_tokens):
        raise ValueError(f"the transformer expects K={model.cfg.num_codes}, N={model.cfg.num_tokens}, but the tokenizer "
                         f"makes K={tokenizer.cfg.num_codes}, N={tokenizer.cfg.num_tokens}; use the pair trained together")


@torch.no_grad()
def generate(tokenizer, model, labels: Union[torch.Tensor, int], settings: DecodeSettings = GENERATION,
             generator: Optional[torch.Generator] = None, return_history: bool = False, step: Callable = decode_step):
    """Images (B, 3, S, S) in [-1, 1], decoded from an all-masked canvas.

    ``labels``: the classes (B,) to draw, or a count B of images to draw with no label (an
    unconditional model, or a conditional one given the null class). ``settings.retokenize`` and
    ``settings.blur`` are inpainting's and are not used here.
    """
    labelled = torch.is_tensor(labels)
    check_generator_pair(tokenizer, model, labelled)
    tokenizer.eval()
    device = next(model.parameters()).device
    tokens, token_mask = empty_canvas(labels.shape[0] if labelled else labels, model.cfg.num_tokens, device)
    decoded = iterative_decode(model, tokens, token_mask, settings, generator, return_history=return_history,
                               step=step, labels=labels.to(device) if labelled else None)
    codes, history = decoded if return_history else (decoded, None)
    images = tokenizer.decode(codes)
    return (images, history) if return_history else images


def generate_batched(tokenizer, model, labels: Union[torch.Tensor, int], settings: DecodeSettings = GENERATION,
                     batch_size: int = 64, seed: int = 0, progress: bool = True) -> torch.Tensor:
    """``generate`` for many labels (or a count with no label), ``batch_size`` at a time, one seeded
    generator (as ``inpaint_batched``)."""
    generator = torch.Generator().manual_seed(seed)
    if torch.is_tensor(labels):
        chunks = labels.split(batch_size)
    else:
        chunks = [min(batch_size, labels - start) for start in range(0, labels, batch_size)]
    return torch.cat([generate(tokenizer, model, chunk, settings, generator).cpu()
                      for chunk in tqdm(chunks, desc="generate", disable=not progress, delay=0.5)])


def labels_like_test(test_labels: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` class ids, sorted, in the test set's proportions (``test_labels`` (M,)): each class's
    share of ``count``, rounded by largest remainder (for ``count`` = M, exactly the test set's counts)."""
    counts = torch.bincount(test_labels, minlength=NUM_CLASSES + 1)[:NUM_CLASSES].double()
    exact = counts / counts.sum() * count
    share = exact.floor().long()
    short = count - int(share.sum())
    share[(exact - share).argsort(descending=True)[:short]] += 1  # the largest remainders get one more
    return torch.repeat_interleave(torch.arange(NUM_CLASSES), share)
