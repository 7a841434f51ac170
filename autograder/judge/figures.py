"""Feedback figures: each notebook's idea drawn with the student's own functions, beside the reference's.

After the checks, the judge (autograder/judge/judge.py) draws one figure per notebook twice, with the same
code on the same inputs (the shipped checkpoints, four test emoji, fixed seeds): once with the
student's functions, which run in the worker (every call crosses the wire as plain data, so only
tensors come back), and once with the reference package's. A student sees what their bug does to
an image: a decoder that leaves tokens masked, a γ running the wrong way, attention rows that do
not sum to one, a tokenizer that maps every patch to one code.

The student's half has a time limit (``FIGURE_SECONDS``: a deadline, then the worker is stopped)
and a memory limit (``FIGURE_MEMORY_MB`` of address space above what the worker holds when the figure
starts, and the wire's cap on one message), both set in autograder/student/limits.py; every answer
is checked for shape, dtype and range before it is drawn. Whatever goes wrong gives a one-line note in place of the picture. The figures
are drawn after the report is written and change no score; their inputs are not the hidden checks'.
Each figure has a fixed layout (no tight layout), so the student's and the reference's panels sit
at the same pixels and can be compared panel by panel.
"""

import contextlib
import functools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import matplotlib
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from autograder.judge.wire import WireError
from autograder.records import Figure as Entry
from autograder.student.limits import FIGURE_MEMORY_MB, FIGURE_SECONDS, CellTimeoutError, deadline
from maskgit_lab import attention, decoding, generate, inpaint, masking, schedules, vq
from maskgit_lab.checkpoint import SHIPPED_MVTM_COND, SHIPPED_VQ, load_pair, load_shipped
from maskgit_lab.classes import class_id
from maskgit_lab.data import DEFAULT_ROOT, InpaintingTestSet, evenly_spaced, to_numpy_image
from maskgit_lab.plots import decoding_figure, decoding_frames, off_codebook, panel_row, panel_title, render_tokens

DPI = 100
SEED = 7  # the figures' own draws (decoding, training masks)
MASK_ROWS = 8  # one training batch in the 03 figure


class FigureError(Exception):
    """A student's answer that cannot be drawn: the message is the note shown instead."""


# ----------------------------------------------------------------------------- shared inputs


@functools.cache
def shipped():
    """The course's trained tokenizer and transformer (loaded once per judge)."""
    return load_shipped()


@functools.cache
def test_images() -> dict:
    """Four varied test emoji (the set is sorted by code point, flags first): masked, known, gt."""
    test = InpaintingTestSet(DEFAULT_ROOT)
    items = [test[i] for i in evenly_spaced(6, len(test))[1:5].tolist()]
    return {"masked": torch.stack([item["masked"] for item in items]), "known": torch.stack([item["mask"] for item in items]),
            "gt": torch.stack([item["gt"] for item in items])}


def answer(value, who: str, shape: tuple, kind: str = "float") -> torch.Tensor:
    """The student's ``value`` if it is a tensor of ``shape`` and ``kind`` (float, int, bool), else FigureError."""
    if not isinstance(value, torch.Tensor):
        raise FigureError(f"your {who} returned a {type(value).__name__}, not a tensor")
    if tuple(value.shape) != tuple(shape):
        raise FigureError(f"your {who} returned shape {tuple(value.shape)}, expected {tuple(shape)}")
    value = value.detach()
    if kind == "float" and not (value.is_floating_point() and torch.isfinite(value).all()):
        raise FigureError(f"your {who} returned {value.dtype} values that are not all finite floats")
    if kind == "int" and (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
        raise FigureError(f"your {who} returned {value.dtype}, not integer indices")
    if kind == "bool" and not (value.dtype == torch.bool or ((value == 0) | (value == 1)).all()):
        raise FigureError(f"your {who} returned {value.dtype} values that are not True/False")
    return value.bool() if kind == "bool" else value


def indices(value, who: str, shape: tuple, high: int) -> torch.Tensor:
    """Integer answers in [0, high]."""
    value = answer(value, who, shape, "int").long()
    if value.numel() and (value.min() < 0 or value.max() > high):
        raise FigureError(f"your {who} returned indices outside [0, {high}]")
    return value


def image_axes(fig: Figure, rows: int, cols: int, **box) -> list:
    """A rows × cols grid of image panels at fixed places (``box``: left, right, top, bottom, wspace, hspace)."""
    axes = fig.subplots(rows, cols, squeeze=False, gridspec_kw=box)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


# ----------------------------------------------------------------------------- 01: nearest_code


def collect_tokens(functions: dict) -> dict:
    tokenizer, _ = shipped()
    images = test_images()["gt"]  # (B, 3, S, S)
    B, N, K = images.shape[0], tokenizer.cfg.num_tokens, tokenizer.cfg.num_codes
    with torch.no_grad():
        z = tokenizer.encoder(images)  # (B, C, h, w)
    flat = z.permute(0, 2, 3, 1).reshape(B * N, -1)  # (B·N, C), row-major over the grid as the quantizer reads it
    codebook = tokenizer.quantizer.codebook.weight.detach().clone()  # (K, C)
    codes = indices(functions["nearest_code"](flat, codebook), "nearest_code", (B * N,), K - 1)
    return {"images": images, "decoded": tokenizer.decode(codes.view(B, N)), "usage": torch.bincount(codes, minlength=K)}


def draw_tokens(data: dict) -> Figure:
    B, K = data["images"].shape[0], data["usage"].shape[0]
    fig = Figure(figsize=(5.2, 4.6), dpi=DPI)
    grid = fig.add_gridspec(3, B, left=0.1, right=0.97, top=0.93, bottom=0.1, hspace=0.35, wspace=0.08)
    for c in range(B):
        for r, (key, label) in enumerate((("images", "test emoji"), ("decoded", "tokenized, decoded"))):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(to_numpy_image(data[key][c]))
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    bar = fig.add_subplot(grid[2, :])
    bar.bar(range(K), data["usage"].tolist(), width=1.0, color="tab:blue")
    bar.set_xlim(-0.5, K - 0.5)
    used = int((data["usage"] > 0).sum())
    bar.set_title(f"codebook usage: {used} of {K} codes for {int(data['usage'].sum())} tokens", fontsize=8)
    bar.set_xlabel("code index", fontsize=7)
    bar.tick_params(labelsize=6)
    return fig


# ----------------------------------------------------------------------------- 02: attention maps

HOLE_ROWS, HOLE_COLS, QUERY = slice(2, 6), slice(4, 8), (3, 5)  # a 4×4 block of hidden tokens, a query inside it


def collect_attention(functions: dict) -> dict:
    tokenizer, model = shipped()
    g, H = tokenizer.cfg.grid_size, model.cfg.num_heads
    image = test_images()["gt"][3:]  # (1, 3, S, S): a person, whose parts attend to each other
    tokens = tokenizer.encode(image)  # (1, N)
    mask = torch.zeros(1, g, g, dtype=torch.bool)
    mask[:, HOLE_ROWS, HOLE_COLS] = True
    mask = mask.view(1, g * g)
    block = model.blocks[0]
    with torch.no_grad():
        x = model.tok_emb(tokens.masked_fill(mask, model.mask_id)) + model.pos_emb  # (1, N, D)
        h = block.norm1(x)
        q, k, v = (attention.split_heads(proj(h), H) for proj in (block.attn.q_proj, block.attn.k_proj, block.attn.v_proj))
    got = functions["scaled_dot_product_attention"](q.clone(), k.clone(), v.clone())  # q, k, v: (1, H, N, Dh)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise FigureError("your scaled_dot_product_attention did not return (output, weights)")
    out = answer(got[0], "scaled_dot_product_attention (output)", q.shape)
    weights = answer(got[1], "scaled_dot_product_attention (weights)", (1, H, g * g, g * g))
    with torch.no_grad():  # the rest of the model as Block.forward runs it, with this attention in block 1
        x = x + block.drop(block.attn.out_proj(attention.merge_heads(out)))
        x = x + block.mlp(block.norm2(x))
        for later in model.blocks[1:]:
            x = later(x)
        guess = torch.where(mask, model.head(model.norm(x)).argmax(dim=-1), tokens)  # (1, N)
    query = QUERY[0] * g + QUERY[1]
    return {"shown": render_tokens(tokenizer, tokens, mask)[0], "guess": tokenizer.decode(guess)[0],
            "maps": weights[0, :, query].view(H, g, g), "sums": weights[0].sum(dim=-1)}  # sums: (H, N), each row's total


def draw_attention(data: dict) -> Figure:
    H, g = data["maps"].shape[:2]
    per_row = math.ceil(H / 2)  # heads on two rows, beside the input (top) and the guess (bottom)
    fig = Figure(figsize=(1.45 * (per_row + 1), 3.3), dpi=DPI)
    axes = image_axes(fig, 2, per_row + 1, left=0.02, right=0.98, top=0.86, bottom=0.02, wspace=0.1, hspace=0.55)
    scale = data["shown"].shape[-1] // g  # pixels per token
    for ax, key, title in ((axes[0, 0], "shown", "input (hidden: gray,\nquery: red)"), (axes[1, 0], "guess", "one-shot guess")):
        ax.imshow(to_numpy_image(data[key]))
        ax.set_title(title, fontsize=7)
    axes[0, 0].add_patch(Rectangle((QUERY[1] * scale - 0.5, QUERY[0] * scale - 0.5), scale, scale, fill=False,
                                   edgecolor="red", lw=1.5))
    for h in range(H):
        ax, sums = axes[h // per_row, 1 + h % per_row], data["sums"][h]
        ax.imshow(data["maps"][h].numpy(), cmap="magma", vmin=0)
        ax.add_patch(Rectangle((QUERY[1] - 0.5, QUERY[0] - 0.5), 1, 1, fill=False, edgecolor="red", lw=1))
        ax.set_title(f"head {h + 1}: rows sum\n{sums.min():.2f} … {sums.max():.2f}", fontsize=6.5)
    for ax in axes.flat[H + 2:]:
        ax.axis("off")
    return fig


# ----------------------------------------------------------------------------- 03: γ and training masks

PROGRESS = torch.linspace(0, 1, 101)


def collect_schedules(functions: dict) -> dict:
    gamma, N = functions["gamma"], shipped()[0].cfg.num_tokens
    curves = torch.stack([answer(gamma(name)(PROGRESS.clone()), f'gamma("{name}") at r', PROGRESS.shape)
                          for name in schedules.SCHEDULES])  # (6, R)
    generator = torch.Generator().manual_seed(SEED)
    progress = torch.rand(MASK_ROWS, generator=generator)  # (B,) r ~ U(0, 1), as in training
    ratios = answer(gamma("cosine")(progress), 'gamma("cosine")', (MASK_ROWS,)).double()
    if ((ratios < 0) | (ratios > 1)).any():
        raise FigureError('your gamma("cosine") gave a masked fraction outside [0, 1]')
    masks = answer(functions["random_token_mask"](MASK_ROWS, N, ratios.float(), generator), "random_token_mask",
                   (MASK_ROWS, N), "bool")
    return {"curves": curves.round(decimals=4), "ratios": ratios, "masks": masks}


@functools.cache
def reference_curves() -> torch.Tensor:
    return torch.stack([schedules.gamma(name)(PROGRESS) for name in schedules.SCHEDULES])


def draw_schedules(data: dict) -> Figure:
    fig = Figure(figsize=(8.4, 3.2), dpi=DPI)
    left = fig.add_axes((0.07, 0.14, 0.36, 0.74))
    right = fig.add_axes((0.62, 0.14, 0.36, 0.74))
    for name, mine, reference in zip(schedules.SCHEDULES, data["curves"], reference_curves()):
        left.plot(PROGRESS.numpy(), reference.numpy(), color="0.6", linestyle="--", linewidth=1)
        left.plot(PROGRESS.numpy(), mine.numpy(), linewidth=1.5, label=name)
    left.set_xlim(0, 1)
    left.set_ylim(-0.05, 1.05)
    left.set(xlabel="progress r", ylabel="γ(r): fraction masked")
    left.set_title("γ curves (gray dashes: the reference)", fontsize=9)
    left.legend(fontsize=6.5, loc="lower left")
    masks = data["masks"]
    B, N = masks.shape
    right.imshow(masks.float().numpy(), cmap="gray_r", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    counts = masks.sum(dim=1).tolist()
    expected = masking.mask_counts(data["ratios"], B, N).tolist()
    right.set_yticks(range(B), [f"γ = {r:.2f}: {c} masked" for r, c in zip(data["ratios"].tolist(), counts)], fontsize=6.5)
    for label, count, want in zip(right.get_yticklabels(), counts, expected):
        label.set_color("black" if count == want else "red")
    right.set_xlabel(f"token (N = {N}); black = masked", fontsize=8)
    right.set_title("one training batch (cosine): each row's mask", fontsize=9)
    return fig


# ----------------------------------------------------------------------------- 04: decoding history

def collect_decoding(functions: dict) -> dict:
    tokenizer, model = shipped()
    images = test_images()
    tokens = tokenizer.encode(images["masked"])  # (B, N)
    B, N = tokens.shape
    token_mask = inpaint.token_mask_from_pixels(images["known"], tokenizer.cfg.downsample)
    theirs = functions["decode_step"]

    def step(logits, current, mask, n0, t, steps, schedule, temperature, mask_id, generator=None, fill_all=False):
        # the notebook's decode_step has no fill_all: without a sweet spot, γ(1) = 0 fills every token at the last step
        got = theirs(logits, current.clone(), mask.clone(), n0.clone(), t, steps, schedule, temperature, mask_id, generator)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise FigureError("your decode_step did not return (next tokens, next mask)")
        return indices(got[0], "decode_step (tokens)", (B, N), mask_id), answer(got[1], "decode_step (mask)", (B, N), "bool")

    codes, history = decoding.iterative_decode(model, tokens, token_mask, decoding.DecodeSettings(),
                                               torch.Generator().manual_seed(SEED), return_history=True, step=step)
    result = inpaint.paste_known(render_tokens(tokenizer, codes, off_codebook(tokenizer, codes)), images["masked"], images["known"])
    return {"masked": images["masked"], "frames": decoding_frames(tokenizer, history),  # (T, B, 3, S, S)
            "left": torch.stack(history.num_masked), "n0": token_mask.sum(dim=1), "result": result, "truth": images["gt"]}


def draw_decoding(data: dict) -> Figure:
    fig = decoding_figure(data["masked"], data["frames"], data["left"], data["result"], data["truth"], data["n0"])
    fig.set_dpi(DPI)
    return fig


# ----------------------------------------------------------------------------- 05: inpainting


def collect_inpainting(functions: dict) -> dict:
    tokenizer, model = shipped()
    images = test_images()
    masked, known = images["masked"], images["known"]  # (B, 3, S, S), (B, S, S)
    B, N, f = masked.shape[0], tokenizer.cfg.num_tokens, tokenizer.cfg.downsample
    unknown = answer(functions["token_mask_from_pixels"](known.clone(), f), "token_mask_from_pixels", (B, N), "bool")
    codes = decoding.iterative_decode(model, tokenizer.encode(masked), unknown, decoding.DecodeSettings(),
                                      torch.Generator().manual_seed(SEED))
    decoded = tokenizer.decode(codes)  # (B, 3, S, S)
    pasted = answer(functions["paste_known"](decoded.clone(), masked.clone(), known.clone()), "paste_known", masked.shape)
    return {"masked": masked, "known": known, "unknown": unknown, "pasted": pasted.clamp(-1, 1), "truth": images["gt"]}


def draw_inpainting(data: dict) -> Figure:
    B = data["known"].shape[0]
    g = math.isqrt(data["unknown"].shape[1])
    fig = Figure(figsize=(5.6, 1.35 * B + 0.3), dpi=DPI)
    axes = fig.subplots(B, 1, squeeze=False, gridspec_kw=dict(left=0.01, right=0.99, top=0.93, bottom=0.01, hspace=0.08))
    titles = ["masked input", "pixel mask (black: unknown)\nand your token mask (red)", "pasted result", "truth"]
    for r, ax in enumerate(axes[:, 0]):
        tokens = data["unknown"][r].view(g, g).float()
        overlay = torch.zeros(g, g, 4)
        overlay[..., 0], overlay[..., 3] = 1.0, 0.45 * tokens  # red, see-through where a token is to be predicted
        masked, mask, pasted, truth = panel_row(ax, 4)
        ax.imshow(to_numpy_image(data["masked"][r]), extent=masked)
        ax.imshow(data["known"][r].float().numpy(), cmap="gray", vmin=0, vmax=1, extent=mask)
        ax.imshow(overlay.numpy(), extent=mask, interpolation="nearest")
        ax.imshow(to_numpy_image(data["pasted"][r]), extent=pasted)
        ax.imshow(to_numpy_image(data["truth"][r]), extent=truth)
        if r == 0:
            for extent, title in zip((masked, mask, pasted, truth), titles):
                panel_title(ax, extent, title, fontsize=7)
    return fig


# ----------------------------------------------------------------------------- 06: generation

GENERATED = ("smileys", "people", "food", "flags")  # the classes drawn, one column each


@functools.cache
def shipped_conditional():
    """The shipped tokenizer and the class-conditional transformer (loaded once per judge)."""
    return load_pair(SHIPPED_VQ, SHIPPED_MVTM_COND)


def collect_generation(functions: dict) -> dict:
    tokenizer, model = shipped_conditional()
    labels = torch.tensor([class_id(name) for name in GENERATED])  # (B,)
    B, N, K = len(labels), model.cfg.num_tokens, model.cfg.num_codes
    settings = decoding.GENERATION

    def conditional(tokens, labels):  # the transformer as the plain function guided_logits calls
        return model(tokens, labels)

    def logits_of(setting):  # what step t of setting sees: their guidance, sharpened by the step's s
        def logits(tokens, labels, t):
            got = functions["guided_logits"](conditional, tokens, labels, settings.guidance, model.null_class)
            return answer(got, "guided_logits", (B, N, K)) / setting.sample_temperature_at(t)

        return logits

    rows = {}
    for setting in (settings, replace(settings, steps=1)):
        steps = setting.steps
        with torch.no_grad():  # also while the worker calls back into conditional() and logits()
            codes = functions["generate_codes"](logits_of(setting), labels.clone(), N, model.mask_id, steps,
                                                schedules.gamma(settings.schedule), settings.temperature,
                                                decoding.decode_step, torch.Generator().manual_seed(SEED))
        codes = indices(codes, "generate_codes", (B, N), model.mask_id)
        rows[steps] = render_tokens(tokenizer, codes, off_codebook(tokenizer, codes))  # a token left masked: gray
    return {"rows": [rows[settings.steps], rows[1]], "titles": [f"T = {settings.steps}", "T = 1"]}


def draw_generation(data: dict) -> Figure:
    fig = Figure(figsize=(5.0, 2.8), dpi=DPI)
    axes = image_axes(fig, 2, len(GENERATED), left=0.1, right=0.98, top=0.9, bottom=0.02, wspace=0.06, hspace=0.08)
    for r, (images, title) in enumerate(zip(data["rows"], data["titles"])):
        axes[r, 0].set_ylabel(title, fontsize=8)
        for c, name in enumerate(GENERATED):
            axes[r, c].imshow(to_numpy_image(images[c]))
            if r == 0:
                axes[r, c].set_title(name, fontsize=8)
    return fig


# ----------------------------------------------------------------------------- per notebook


@dataclass(frozen=True)
class Picture:
    reference: dict  # the student's function name → the reference function it stands beside
    collect: Callable  # functions → the data the figure shows
    draw: Callable  # data → Figure
    caption: str


PICTURES = {
    "01_vq_tokenization": Picture(
        {"nearest_code": vq.nearest_code}, collect_tokens, draw_tokens,
        "Four test emoji tokenized with your nearest_code (the shipped tokenizer's codebook) and decoded, "
        "and how often each code was picked."),
    "02_multi_head_attention": Picture(
        {"scaled_dot_product_attention": attention.scaled_dot_product_attention}, collect_attention, draw_attention,
        "The shipped transformer with your scaled_dot_product_attention in its first block: where the red query "
        "token looks in each head (every row of the weights should sum to 1), and the model's one-shot guess of "
        "the hidden tokens."),
    "03_mvtm_training": Picture(
        {"gamma": schedules.gamma, "random_token_mask": masking.random_token_mask}, collect_schedules, draw_schedules,
        'Your six γ curves over the reference\'s, and one training batch masked with your gamma("cosine") and '
        "random_token_mask (a count in red is not max(1, floor(γ·N)))."),
    "04_iterative_decoding": Picture(
        {"decode_step": decoding.decode_step}, collect_decoding, draw_decoding,
        "Four test images decoded by the shipped transformer with your decode_step (cosine, T = 8): masked "
        "tokens gray, the count of tokens still masked after each step."),
    "05_inpainting_and_fid": Picture(
        {"token_mask_from_pixels": inpaint.token_mask_from_pixels, "paste_known": inpaint.paste_known},
        collect_inpainting, draw_inpainting,
        "Your token_mask_from_pixels over the pixel mask, and the result decoded by the shipped models and "
        "pasted with your paste_known."),
    "06_generation_and_guidance": Picture(
        {"guided_logits": decoding.guided_logits, "generate_codes": generate.generate_codes},
        collect_generation, draw_generation,
        "Four classes generated from an empty canvas by the shipped conditional transformer with your generate_codes "
        f"and guided_logits (the package's decode_step, the generation default, seed 7): T = {decoding.GENERATION.steps} "
        "above, T = 1 below; "
        "a token left masked is gray."),
}


def save(fig: Figure, path: Path) -> str:
    fig.savefig(path, dpi=DPI)  # no tight bounding box: the layout is fixed, the same for both halves
    return path.name


def why(err: BaseException, seconds: int) -> str:
    """The one-line note for a figure the student's functions could not make."""
    if isinstance(err, FigureError):
        return str(err)
    if isinstance(err, CellTimeoutError):
        return f"your functions did not finish the picture within {seconds} s"
    if isinstance(err, MemoryError) or "can't allocate memory" in str(err):
        return f"your functions ran out of memory (the picture's limit is {FIGURE_MEMORY_MB} MB more than they held)"
    if isinstance(err, WireError):
        return f"the process running your code stopped: {str(err)[:150]}"
    message = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
    return f"your code raised {type(err).__name__}" + (f": {message}" if message else "")


@contextlib.contextmanager
def one_thread():
    """A figure is a few small model passes: on one thread it never waits for cores that kernels and other
    judges hold (two threads on a busy 2-core machine made the reference's 04 figure 9× slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def reference_figure(notebook: str, out: Path) -> Path:
    """Draw ``notebook``'s figure with the reference's functions into ``out``; returns the PNG's path."""
    picture = PICTURES[notebook]
    out.mkdir(parents=True, exist_ok=True)
    matplotlib.rcdefaults()  # the same style for every student, whatever matplotlibrc the environment holds
    path = out / f"{notebook}-reference.png"
    partial = out / f"{notebook}-reference.partial.png"  # renamed when whole: a judge may look for it meanwhile
    with one_thread():
        save(picture.draw(picture.collect(picture.reference)), partial)
    return partial.replace(path)


def student_functions(picture: Picture, worker) -> dict:
    """The student's functions the picture needs, as stand-ins that call them in the worker."""
    functions = {}
    for name in picture.reference:
        functions[name] = worker.function(name)
        if functions[name] is None:
            raise FigureError(f"your {name} is not defined (its cell did not run)")
    return functions


def make(notebook: str, worker, out: Path, shared: Path = None) -> Entry:
    """Draw ``notebook``'s figure into ``out`` with the student's functions (through ``worker``), beside the reference's:
    the one in ``shared`` (drawn once for a grading run by :func:`reference_figure`) if it is there, else drawn now.

    Returns the entry: the reference's PNG (its path), the student's (a file name in ``out``) or a one-line note instead.
    """
    picture = PICTURES[notebook]
    out.mkdir(parents=True, exist_ok=True)
    reference = shared / f"{notebook}-reference.png" if shared else None
    if reference is None or not reference.is_file():
        reference = reference_figure(notebook, out)
    entry = Entry(picture.caption, reference=str(reference))
    matplotlib.rcdefaults()
    try:
        with deadline(FIGURE_SECONDS):
            functions = student_functions(picture, worker)
            worker.cap_memory(FIGURE_MEMORY_MB)
            with one_thread():
                data = picture.collect(functions)
        with one_thread():
            entry.yours = save(picture.draw(data), out / f"{notebook}.png")
    except BaseException as err:  # noqa: BLE001 (the student's half, whatever it did: a note, never a lost run)
        entry.note = f"no picture: {why(err, FIGURE_SECONDS)}"
    return entry
