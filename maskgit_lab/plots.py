"""Figures the course shows: decoding step by step, γ curves with per-step mask counts.

Every figure is drawn from the same code path as training and grading (the decoding
history, the schedule functions); nothing here recomputes the algorithm.
"""

import csv
from pathlib import Path
from typing import Optional

import torch
from matplotlib.figure import (
    Figure,  # no pyplot: works headless and leaves notebook backends alone
)
from matplotlib.patches import Rectangle

from maskgit_lab.data import to_numpy_image
from maskgit_lab.decoding import DecodeSettings, masked_after_step
from maskgit_lab.schedules import SCHEDULES, gamma


def save(fig: Figure, path, tight: bool = True) -> Path:
    """Write ``fig`` as a PNG (folders created; ``tight``: margins fitted first); returns the path."""
    if tight:
        fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return Path(path)


@torch.no_grad()
def flat_codes(tokenizer, fill: float) -> torch.Tensor:
    """(1, N): the codes of an image that is ``fill`` everywhere."""
    S = tokenizer.cfg.image_size
    return tokenizer.encode(torch.full((1, 3, S, S), fill, device=next(tokenizer.parameters()).device))


@torch.no_grad()
def render_tokens(tokenizer, tokens: torch.Tensor, mask: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Decode (B, N) tokens whose masked positions are drawn as flat gray patches (``fill`` in [-1, 1]).

    The decoder's convolutions let each token colour its neighbours' pixels, so a masked token is
    decoded as a code of a flat ``fill`` image: an arbitrary code (code 0 of the shipped tokenizer is
    magenta) would fringe the decided tokens around it with colours no one chose.
    """
    f, g = tokenizer.cfg.downsample, tokenizer.cfg.grid_size
    images = tokenizer.decode(torch.where(mask, flat_codes(tokenizer, fill), tokens))  # masked patches painted below
    patch = mask.view(-1, 1, g, g).float()
    patch = torch.nn.functional.interpolate(patch, scale_factor=f, mode="nearest").bool()  # (B, 1, S, S)
    return images.masked_fill(patch, fill)


PANEL_GAP = 0.08  # space between two panels of a row, as a fraction of a panel


def panel_row(ax, count: int) -> list:
    """Make ``ax`` hold ``count`` framed image panels side by side (one axes per row: drawing many rows of
    images stays fast); returns each panel's ``extent`` for ``imshow``, in units of one panel."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)  # each panel has its own frame
    extents = [(c * (1 + PANEL_GAP), c * (1 + PANEL_GAP) + 1, 1, 0) for c in range(count)]  # (x0, x1, bottom, top)
    for x0, _, _, _ in extents:
        ax.add_patch(Rectangle((x0, 0), 1, 1, fill=False, edgecolor="black", linewidth=0.8, zorder=3))
    ax.set_xlim(0, extents[-1][1])
    ax.set_ylim(1, 0)
    ax.set_aspect("equal")
    return extents


def panel_title(ax, extent: tuple, title: str, fontsize: float = 6):
    """``title`` centred above the panel at ``extent`` (from :func:`panel_row`)."""
    ax.text((extent[0] + extent[1]) / 2, -0.04, title, ha="center", va="bottom", fontsize=fontsize)


def image_panels(ax, images: list, titles: list, fontsize: float = 6):
    """(3, S, S) images side by side in one axes, each titled above."""
    for extent, image, title in zip(panel_row(ax, len(images)), images, titles):
        ax.imshow(to_numpy_image(image), extent=extent)
        panel_title(ax, extent, title, fontsize)


def off_codebook(tokenizer, tokens: torch.Tensor) -> torch.Tensor:
    """Where ``tokens`` hold no code of ``tokenizer`` (e.g. a mask id a decoder left behind): drawn gray."""
    return (tokens < 0) | (tokens >= tokenizer.cfg.num_codes)


@torch.no_grad()
def decoding_frames(tokenizer, history) -> torch.Tensor:
    """(T, B, 3, S, S): every step of a decoding history drawn at once, masked tokens gray (so is any
    index outside the codebook: :func:`off_codebook`)."""
    tokens, masks = torch.stack(history.tokens), torch.stack(history.masks)  # (T, B, N) each
    T, B, N = tokens.shape
    gray = masks | off_codebook(tokenizer, tokens)
    frames = render_tokens(tokenizer, tokens.reshape(T * B, N), gray.reshape(T * B, N))  # (T·B, 3, S, S)
    return frames.view(T, B, *frames.shape[1:])


def decoding_figure(masked, frames, left, result, truth, n0=None, rows: int = 6) -> Figure:
    """One row per image: masked input, each decoding step (``frames``: (T, B, 3, S, S), ``left``: (T, B) tokens
    still masked), result, ground truth. A fixed layout: two such figures line up panel for panel."""
    T = frames.shape[0]
    rows, cols = min(rows, masked.shape[0]), T + 3
    height = 1.2 * rows + 0.2
    fig = Figure(figsize=(0.95 * cols, height))
    axes = fig.subplots(rows, 1, squeeze=False, gridspec_kw=dict(left=0.01, right=0.99, top=1 - 0.45 / height, bottom=0.01,
                                                                 hspace=0.45))
    for r, ax in enumerate(axes[:, 0]):
        panels = [masked[r]] + [frame[r] for frame in frames] + [result[r], truth[r]]
        start = "input" if n0 is None else f"input: {int(n0[r])}"
        titles = [start] + [f"step {t + 1}: {int(left[t][r])}" for t in range(T)] + ["result", "truth"]
        image_panels(ax, panels, titles)
    fig.suptitle("decoding, masked tokens gray; each title: tokens still masked", fontsize=8, y=0.995)
    return fig


def decoding_grid(tokenizer, masked, history, result, truth, path, max_rows: int = 6):
    """The decoding history of up to ``max_rows`` images (:func:`decoding_figure`), saved as a PNG."""
    frames = decoding_frames(tokenizer, history)
    fig = decoding_figure(masked, frames, torch.stack(history.num_masked), result, truth, rows=max_rows)
    return save(fig, path, tight=False)  # the rows are placed to fit their titles


def gamma_figure(path, steps: int = DecodeSettings.steps, n0: int = 64):
    """γ(r) for every schedule, and the tokens still masked after each of T steps."""
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    r = torch.linspace(0, 1, 201)
    for name in SCHEDULES:
        fn = gamma(name)
        left.plot(r, fn(r), label=name)
        counts = [n0] + [int(masked_after_step(fn, t, steps, torch.tensor([n0]))[0]) for t in range(steps)]
        right.plot(range(steps + 1), counts, marker="o", label=name)
    left.set(xlabel="r (progress)", ylabel="γ(r) = masked fraction", title="mask schedules")
    right.set(xlabel="step t", ylabel="tokens still masked", title=f"T = {steps}, n₀ = {n0} unknown tokens")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    return save(fig, path)


def image_grid(rows_of_images, titles, path):
    """Columns titled ``titles``; each entry of ``rows_of_images`` is a (B, 3, S, S) tensor."""
    B = rows_of_images[0].shape[0]
    fig = Figure(figsize=(1.4 * len(titles), 1.4 * B))
    axes = fig.subplots(B, len(titles), squeeze=False)
    for c, (images, title) in enumerate(zip(rows_of_images, titles)):
        for r in range(B):
            axes[r, c].imshow(to_numpy_image(images[r]))
            axes[r, c].axis("off")
        axes[0, c].set_title(title, fontsize=7)
    return save(fig, path)


def labelled_rows(images: torch.Tensor, row_names: list, column_titles: list, path, title: str):
    """A grid of (R, K, 3, S, S) ``images``: one row per name in ``row_names`` (e.g. a class), each
    panel titled from ``column_titles`` (K), the figure from ``title``; saved as a PNG."""
    R, K = images.shape[:2]
    height = 1.1 * R + 0.5
    fig = Figure(figsize=(0.95 * K + 1.2, height))
    axes = fig.subplots(R, 1, squeeze=False, gridspec_kw=dict(left=0.12, right=0.99, top=1 - 0.5 / height, bottom=0.01,
                                                              hspace=0.35))
    for ax, row, name in zip(axes[:, 0], images, row_names):
        image_panels(ax, list(row), column_titles)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=9, y=0.995)
    return save(fig, path, tight=False)  # the rows are placed to fit their titles


def quality_bars(rows: list, path, ceiling: float, floor: float):
    """FID of every row of the quality table, with the ceiling and floor as lines."""
    fig = Figure(figsize=(8, 0.3 * len(rows) + 1.5))
    ax = fig.subplots()
    names = [row["method"] for row in rows]
    ax.barh(range(len(rows)), [row["fid"] for row in rows], color="tab:blue")
    ax.axvline(ceiling, color="tab:red", linestyle="--", label=f"ceiling (best trivial fill) {ceiling:.1f}")
    ax.axvline(floor, color="tab:green", linestyle="--", label=f"tokenizer floor {floor:.1f}")
    ax.set_yticks(range(len(rows)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="FID ↓ (test set, known pixels pasted back)", title="inpainting quality")
    ax.legend(fontsize=7)
    return save(fig, path)


def training_curves(log_csv, path, columns: list, guides: Optional[dict] = None):
    """One panel per column of a run's ``log.csv`` against the step.

    ``guides`` maps a column to (value, label): a dashed reference line, e.g. the loss of a uniform guess.
    """
    with open(log_csv) as f:
        rows = list(csv.DictReader(f))
    steps = [int(row["step"]) for row in rows]
    fig = Figure(figsize=(3.2 * len(columns), 3))
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    for ax, column in zip(axes, columns):
        ax.plot(steps, [float(row[column]) for row in rows], marker=".")
        if column in (guides or {}):
            value, label = guides[column]
            ax.axhline(value, color="gray", linestyle="--", label=label)
            ax.legend(fontsize=8)
        ax.set(xlabel="step", title=column)
        ax.grid(alpha=0.3)
    return save(fig, path)
