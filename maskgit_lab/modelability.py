"""Can a transformer predict these tokens? Diagnostics of a tokenizer beyond its reconstructions.

A tokenizer is judged twice in MaskGIT: by how well its tokens draw the image (the floor), and by
how well a transformer can guess a hidden token from the visible ones. The second can fail while
the first looks fine:
- **many codes for one look.** If pure-white patches spread over a hundred interchangeable codes,
  the transformer must guess which one the encoder picked; cross-entropy cannot fall there. We
  measure the entropy H(code | flat colour) of single-colour patches: 0 bits when each colour has
  one code.
- **context that moves.** Inpainting encodes the *masked* image. When the encoder sees past its
  patch, a known token next to the hole changes with the hole's gray fill, and the transformer
  meets context it never saw in training. We count the known tokens whose code differs between
  the masked image and the ground truth: 0 for a patch-local encoder.
- **perplexity** exp(H(code)) over the test set, for scale: more codes in use is not better tokens.
A short, fixed MVTM budget on the tokens then measures the accuracy it reaches (``probe``).
``candidate_table`` renders the measured comparison of tokenizers (``data/checkpoints/candidates.json``)
that chose the shipped one.
"""

import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch

from maskgit_lab.checkpoint import SHIPPED_CHECKPOINTS, load_model
from maskgit_lab.configs import get_config
from maskgit_lab.data import DEFAULT_ROOT
from maskgit_lab.inpaint import token_mask_from_pixels
from maskgit_lab.train import MVTMTrainConfig, train_mvtm
from maskgit_lab.vq import encode_all

CANDIDATES = SHIPPED_CHECKPOINTS / "candidates.json"
# (field, column title, format) of the candidates table; a missing field prints as "–"
CANDIDATE_COLUMNS = (
    ("tokenizer", "tokenizer", "{}"),
    ("floor_fid", "floor FID ↓", "{:.1f}"),
    ("white_entropy_bits", "white patches: code entropy ↓", "{:.2f} bits"),
    ("flat_conditional_bits", "flat patches: code entropy given the colour ↓", "{:.2f} bits"),
    ("context_shift", "known tokens moved by the hole ↓", "{:.1%}"),
    ("probe_acc_50", "masked accuracy, 400 MVTM steps ↑", "{:.3f}"),
    ("gap_closed", "gap closed ↑", "{:.2f}"),
)


def entropy_bits(counts: torch.Tensor) -> float:
    """Entropy in bits of a histogram (zeros ignored)."""
    probs = counts[counts > 0].double() / counts.sum()
    return float(-(probs * probs.log2()).sum())


def patches(images: torch.Tensor, f: int) -> torch.Tensor:
    """Images (M, 3, S, S) in [-1, 1] → patches (M, N, 3, f·f) in [0, 1], row-major like the token grid."""
    M, C, S, _ = images.shape
    x = (images + 1) / 2
    grid = x.unfold(2, f, f).unfold(3, f, f)  # (M, 3, h, w, f, f)
    return grid.permute(0, 2, 3, 1, 4, 5).reshape(M, (S // f) ** 2, C, f * f)


def flat_patches(images: torch.Tensor, f: int, tolerance: float = 0.02):
    """(flat (M, N) bool, colour (M, N) long): patches of one colour, each channel within ``tolerance``.

    The colour id quantises the patch's mean colour to 16 levels per channel, so near-identical
    flat patches share an id.
    """
    p = patches(images, f)  # (M, N, 3, f·f)
    flat = (p.amax(-1) - p.amin(-1) <= tolerance).all(-1)  # (M, N)
    levels = (p.mean(-1) * 15).round().long()  # (M, N, 3) in 0..15
    colour = levels[..., 0] * 256 + levels[..., 1] * 16 + levels[..., 2]
    return flat, colour


def white_patches(images: torch.Tensor, f: int) -> torch.Tensor:
    """(M, N) bool: patches whose every pixel is above 0.95 in every channel (the emoji background)."""
    return (patches(images, f) > 0.95).all(-1).all(-1)


def code_stats(codes: torch.Tensor, num_codes: int) -> dict:
    """Codes used, entropy (bits) and perplexity of a set of tokens."""
    counts = torch.bincount(codes.flatten(), minlength=num_codes)
    bits = entropy_bits(counts)
    return {"codes_used": int((counts > 0).sum()), "entropy_bits": bits, "perplexity": 2**bits}


def flat_code_stats(codes: torch.Tensor, images: torch.Tensor, num_codes: int, f: int) -> dict:
    """How many codes stand for one flat look: white patches, and H(code | colour) over flat patches."""
    white = white_patches(images, f)
    white_counts = torch.bincount(codes[white], minlength=num_codes)
    flat, colour = flat_patches(images, f)
    conditional, total = 0.0, int(flat.sum())
    for c in colour[flat].unique():  # H(code | colour) = Σ_c p(c)·H(code | c)
        of_colour = flat & (colour == c)
        conditional += int(of_colour.sum()) / total * entropy_bits(torch.bincount(codes[of_colour], minlength=num_codes))
    return {
        "white_share": white.float().mean().item(),
        "white_codes": int((white_counts > 0).sum()),
        "white_entropy_bits": entropy_bits(white_counts),
        "white_top_share": (white_counts.max() / white_counts.sum().clamp(min=1)).item(),
        "flat_share": flat.float().mean().item(),
        "flat_conditional_bits": conditional,
    }


@torch.no_grad()
def context_shift(tokenizer, masked: torch.Tensor, known: torch.Tensor, gt_codes: torch.Tensor, batch_size: int = 128) -> float:
    """Share of the known tokens (patch fully visible) whose code differs between the masked image and
    ``gt_codes``, the ground truth's tokens (``encode_all(tokenizer, gt)``)."""
    unknown = token_mask_from_pixels(known, tokenizer.cfg.downsample)  # (M, N)
    changed = encode_all(tokenizer, masked, batch_size) != gt_codes
    return (changed & ~unknown).sum().item() / max(1, (~unknown).sum().item())


def diagnose_tokenizer(tokenizer, test: dict) -> dict:
    """Every diagnostic above on a test batch (``load_test_batch``'s dict: masked, known, gt)."""
    cfg = tokenizer.cfg
    codes = encode_all(tokenizer, test["gt"])
    return {
        **code_stats(codes, cfg.num_codes),
        **flat_code_stats(codes, test["gt"], cfg.num_codes, cfg.downsample),
        "context_shift": context_shift(tokenizer, test["masked"], test["known"], codes),
    }


def probe(tokenizer_path, run_dir, steps: int = 300, data_root=DEFAULT_ROOT, max_images: Optional[int] = None,
          inpaint_masks: float = 0.0) -> dict:
    """Train the default transformer for ``steps`` on this tokenizer's tokens; its final test accuracies.

    The same budget for every tokenizer makes accuracies comparable: the one that reaches more
    with the same work has the more predictable tokens.
    """
    vq = load_model(tokenizer_path, "vq").cfg
    cfg = replace(get_config("default").transformer, num_codes=vq.num_codes, num_tokens=vq.num_tokens)
    tcfg = MVTMTrainConfig(steps=steps, warmup=min(100, steps // 5), log_every=steps, save_every=steps,
                           max_images=max_images, inpaint_masks=inpaint_masks)
    run = train_mvtm(cfg, tcfg, tokenizer_path, run_dir, data_root, progress=False)
    final = torch.load(Path(run) / "state.pt", map_location="cpu", weights_only=False)["log"][-1]
    return {"probe_steps": steps, "probe_acc_50": final["test_acc_50"], "probe_acc_90": final["test_acc_90"]}


def candidate_table(path=CANDIDATES) -> str:
    """The measured tokenizer candidates as a markdown table, one row each, in the file's order."""
    rows = json.loads(Path(path).read_text())
    lines = ["| " + " | ".join(title for _, title, _ in CANDIDATE_COLUMNS) + " |", "|" + "---|" * len(CANDIDATE_COLUMNS)]
    for row in rows:
        cells = [fmt.format(row[key]) if row.get(key) is not None else "–" for key, _, fmt in CANDIDATE_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
