"""``make demo``: inpaint test images end to end and save the figures a student looks at.

With the shipped checkpoints in ``data/checkpoints/`` it loads them, inpaints the whole test
set with the default schedule and prints the tokenizer floor, the trivial-fill ceiling, the
inpainting FID and the gap closed (``full=True``: every schedule × T, and the sweet spot).
With the class-conditional transformer as well it generates every class from an empty canvas
at the generation default (``generated.png``), and the same classes and seeds in one step
against T steps (``generation_steps.png``).
Without them it first trains a deliberately short CPU run of both stages (a few minutes:
enough to see the pipeline work, not to get good pictures), says so, and skips the scores.
"""

from dataclasses import replace
from pathlib import Path

import torch

from maskgit_lab.checkpoint import SHIPPED_MVTM_COND, load_model, load_pair
from maskgit_lab.classes import NUM_CLASSES, SHORT_NAMES
from maskgit_lab.configs import get_config
from maskgit_lab.data import DEFAULT_ROOT, load_test_batch
from maskgit_lab.decoding import GENERATION, DecodeSettings
from maskgit_lab.generate import generate
from maskgit_lab.inpaint import inpaint
from maskgit_lab.plots import decoding_grid, gamma_figure, image_grid, labelled_rows, quality_bars
from maskgit_lab.quality import (
    baseline_rows,
    full_settings,
    markdown_table,
    maskgit_rows,
    summarize,
    test_set_scorer,
    write_rows,
)
from maskgit_lab.train import (
    MVTMTrainConfig,
    VQTrainConfig,
    export,
    train_mvtm,
    train_vq,
)
from maskgit_lab.utils import default_device

QUICK_VQ = VQTrainConfig(steps=200, batch_size=16, gan_weight=0.0, restart_after=10, log_every=100, save_every=50)
QUICK_MVTM = MVTMTrainConfig(steps=300, batch_size=32, warmup=30, log_every=100, save_every=100)


def quick_checkpoints(out: Path, data_root, shipped_vq=None) -> tuple:
    """Train what is missing briefly (resuming if interrupted) and export it under ``out``.

    A shipped tokenizer is used as it is; then only a transformer of the default size is trained on
    its tokens. Without one, both stages train at the ``coarse`` size: a quarter of the tokens, so
    minutes rather than most of an hour on a CPU.
    """
    use_shipped = shipped_vq is not None and Path(shipped_vq).exists()
    vq_run, vq_path = out / "runs" / "vq", Path(shipped_vq) if use_shipped else out / "checkpoints" / "vq.pt"
    name = "mvtm-on-shipped-vq" if use_shipped else "mvtm"
    mvtm_run, mvtm_path = out / "runs" / name, out / "checkpoints" / f"{name}.pt"
    if use_shipped:
        grid = load_model(vq_path, "vq").cfg
        transformer = replace(get_config("default").transformer, num_codes=grid.num_codes, num_tokens=grid.num_tokens)
    else:
        coarse = get_config("coarse")
        transformer = coarse.transformer
        if not vq_path.exists():
            train_vq(coarse.vq, QUICK_VQ, vq_run, data_root, resume=(vq_run / "state.pt").exists())
            export(vq_run, "vq", vq_path)
    if not mvtm_path.exists():
        train_mvtm(transformer, QUICK_MVTM, vq_path, mvtm_run, data_root, resume=(mvtm_run / "state.pt").exists())
        export(mvtm_run, "mvtm", mvtm_path)
    return vq_path, mvtm_path


SWEET_SPOT_T = 12
BASELINE_CACHE = "baselines.json"  # beside the tokenizer checkpoint


def score_test_set(tokenizer, model, out: Path, data_root, settings: DecodeSettings, full: bool,
                   limit=None, extractor=None, baseline_cache=None) -> dict:
    """The quality table on the test set; prints the headline and writes quality.md / .json / .png.

    ``baseline_cache``: a JSON file that keeps the fill and floor rows (see ``quality.baseline_rows``).
    """
    scorer, test = test_set_scorer(data_root, limit, extractor)
    rows = baseline_rows(scorer, tokenizer, baseline_cache)
    rows += maskgit_rows(scorer, tokenizer, model, test["masked"], full_settings() if full else [settings])
    summary = summarize(rows)
    if full:
        best = summary["best"]["schedule"]
        sweet = [DecodeSettings(best, SWEET_SPOT_T, sweet_spot=s) for s in range(2, SWEET_SPOT_T, 2)]
        rows += maskgit_rows(scorer, tokenizer, model, test["masked"], sweet)
        summary = summarize(rows)
    best = summary["best"]
    print(f"{len(test['names'])} test images, extractor {scorer.extractor.name}")
    print(f"tokenizer floor FID {summary['floor']:.1f} | ceiling (best trivial fill) FID {summary['ceiling']:.1f} | "
          f"{best['method']} FID {best['fid']:.1f} | gap closed {best['gap_closed']:.2f}")
    table = markdown_table(rows)
    print(table)
    (out / "quality.md").write_text(table + "\n")
    write_rows(rows, out / "quality.json")
    quality_bars(rows, out / "quality.png", summary["ceiling"], summary["floor"])
    return {"rows": rows, **summary}


GENERATED_PER_CLASS = 8


def generation_figures(out: Path, tokenizer, model, settings: DecodeSettings = GENERATION,
                       per_class: int = GENERATED_PER_CLASS, seed: int = 0) -> list:
    """``generated.png``: ``per_class`` images of every class at ``settings``, one row per class; and
    ``generation_steps.png``: half as many of each class, the same labels and seed, decoded in one step
    (T = 1: every token sampled at once, none seeing another) beside ``settings.steps`` steps."""
    labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)  # (C·K,) class by class

    def draw(labels, setting):
        images = generate(tokenizer, model, labels, setting, torch.Generator().manual_seed(seed)).cpu()
        return images.view(NUM_CLASSES, -1, *images.shape[1:])  # (C, K, 3, S, S)

    about = f"τ {settings.temperature:g}, s {settings.sampling}, w {settings.guidance:g}"
    generated = labelled_rows(draw(labels, settings), list(SHORT_NAMES), [""] * per_class, out / "generated.png",
                              f"generated from an empty canvas: {settings.schedule} T={settings.steps}, {about}")
    few = labels.view(NUM_CLASSES, per_class)[:, : per_class // 2].reshape(-1)
    steps = (1, settings.steps)
    both = torch.cat([draw(few, replace(settings, steps=t)) for t in steps], dim=1)
    titles = [f"T = {t}" for t in steps for _ in range(per_class // 2)]
    compared = labelled_rows(both, list(SHORT_NAMES), titles, out / "generation_steps.png",
                             f"the same labels and seed in one step and in {settings.steps} ({settings.schedule}, {about})")
    return [generated, compared]


def run_demo(out, data_root=DEFAULT_ROOT, vq=None, mvtm=None, rows: int = 6, settings: DecodeSettings = DecodeSettings(),
             full: bool = False, limit=None, extractor=None, generator=SHIPPED_MVTM_COND):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trained = vq is not None and mvtm is not None and Path(vq).exists() and Path(mvtm).exists()
    if not trained:
        missing = " and ".join(str(p) for p in (vq, mvtm) if p is None or not Path(p).exists())
        print(f"no trained checkpoint at {missing}: training a short CPU demo run of what is missing first "
              f"(tokenizer: {QUICK_VQ.steps} steps, transformer: {QUICK_MVTM.steps} steps; pictures will be rough, "
              f"so no scores are computed)")
        vq, mvtm = quick_checkpoints(out, data_root, shipped_vq=vq)
    tokenizer, model = load_pair(vq, mvtm, device=default_device())
    test = load_test_batch(data_root, limit=rows)
    device = next(model.parameters()).device
    result, history = inpaint(tokenizer, model, test["masked"].to(device), test["known"].to(device), settings,
                              generator=torch.Generator().manual_seed(0), return_history=True)
    truth = test["gt"] if test["gt"] is not None else test["masked"]
    figures = [
        decoding_grid(tokenizer, test["masked"], history, result.cpu(), truth, out / "decoding_steps.png"),
        image_grid([test["masked"], result.cpu(), truth], ["masked", "inpainted", "ground truth"], out / "inpainted.png"),
        gamma_figure(out / "schedules.png", steps=settings.steps, n0=tokenizer.cfg.num_tokens),
    ]
    if trained:
        cache = Path(vq).parent / BASELINE_CACHE if limit is None else None  # whole test sets only
        score_test_set(tokenizer, model, out, data_root, settings, full, limit, extractor, cache)
        figures.append(out / "quality.png")
        if generator is not None and Path(generator).exists():
            figures += generation_figures(out, tokenizer, load_model(generator, "mvtm", device=device))
    for path in figures:
        print(f"saved {path}")
    return figures
