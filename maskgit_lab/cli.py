"""Command line: ``python -m maskgit_lab {data,train-vq,train-mvtm,ship,inpaint,fid,…}``.

Each sub-command is a thin shell over the package's functions; training flags are generated
from the training dataclasses, so a new field shows up here with its default. Every option
is checked by one validator (``maskgit_lab.arguments``) before anything runs: each number has its
domain (``DOMAINS`` for the training fields), booleans are ``true``/``false``, paths are checked for
their kind, and a path to write for being writable and outside the shipped data/. A bad value gets
one line naming the fix and exit code 2, with nothing written.
"""

import argparse
import shlex
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Optional

import torch

from maskgit_lab.arguments import (
    EXIT_USAGE,
    Parser,
    boolean,
    existing_dir,
    existing_file,
    file_to_write,
    folder_to_write,
    integer,
    number,
)
from maskgit_lab.checkpoint import SHIPPED_CHECKPOINTS, SHIPPED_MVTM, SHIPPED_MVTM_COND, SHIPPED_VQ
from maskgit_lab.classes import CATEGORIES, NUM_CLASSES, SHORT_NAMES, class_id
from maskgit_lab.configs import CONFIGS, get_config
from maskgit_lab.data import DEFAULT_ROOT
from maskgit_lab.decoding import GENERATION, DecodeSettings
from maskgit_lab.schedules import SCHEDULES
from maskgit_lab.vq import ENCODERS, RESTART_FROM

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


# --- the validator: the shared types (maskgit_lab.arguments) and the course's paths -----------


def optional_file(text: str) -> str:
    """A checkpoint path kept as text (the training dataclasses store it), or "" for none."""
    return text and str(existing_file(text))


folder = folder_to_write("write elsewhere, e.g. under runs/ or artifacts/")  # a results or run folder


def not_a_folder(text: str) -> Path:
    """A checkpoint that may be missing (``demo`` trains one then), but is never a folder."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a checkpoint file")
    return path


# where to export a checkpoint: the shipped folder only through ``ship``
checkpoint_file = file_to_write("model.pt", "export elsewhere (e.g. runs/vq.pt), and replace a shipped checkpoint only "
                                            "with `python -m maskgit_lab ship`")


# The domain of every training field (train-vq, train-mvtm): a new field must be given one here.
POSITIVE = integer(1)
DOMAINS = {
    "steps": POSITIVE, "batch_size": POSITIVE, "log_every": POSITIVE, "save_every": POSITIVE,
    "max_images": POSITIVE, "restart_after": POSITIVE, "accumulate": POSITIVE,
    "gan_start": integer(0), "warmup": integer(0), "seed": integer(0),
    "lr": number(0, low_open=True), "edge_weight": number(0), "gan_weight": number(0), "weight_decay": number(0),
    "label_smoothing": number(0, 1, high_open=True), "ema": number(0, 1, high_open=True),
    "inpaint_masks": number(0, 1), "p_uncond": number(0, 1),
    "hflip": boolean, "decoder_only": boolean, "amp": boolean, "fused_attention": boolean, "compile": boolean,
    "init": optional_file, "init_decoder": optional_file,
    "restart_from": str, "schedule": str,  # names: checked by `choices`
}
CHOICES = {"restart_from": list(RESTART_FROM), "schedule": list(SCHEDULES)}


def add_dataclass_args(parser, cls):
    """One ``--name`` flag per field of ``cls``, defaulting to the field's default, typed by ``DOMAINS``."""
    for f in fields(cls):
        if f.name not in DOMAINS:
            raise KeyError(f"{cls.__name__}.{f.name} has no domain; add one to maskgit_lab.cli.DOMAINS")
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=DOMAINS[f.name],
                            choices=CHOICES.get(f.name), default=f.default, help=f"(default: {f.default})")


def dataclass_from(args, cls):
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


class UsageError(ValueError):
    """A combination of arguments that cannot work: one line, exit 2."""


step_count = integer(1, "decoding steps T")


def check_decoding(args, config_name: str = "default"):
    """T at most the N tokens of an image (an image has at most N unknown tokens, so with more steps
    some would decode nothing and only cost time); the sweet spot stops within the T steps."""
    tokens = get_config(config_name).transformer.num_tokens
    if args.steps > tokens:
        raise UsageError(f"-T {args.steps} is more decoding steps than the {tokens} tokens of an image "
                         f"(config {config_name!r}), so some steps would decode nothing; use -T ≤ {tokens}")
    if getattr(args, "sweet_spot", None) is not None and args.sweet_spot > args.steps:
        raise UsageError(f"--sweet-spot {args.sweet_spot} stops after more steps than -T {args.steps}; use ≤ {args.steps}")


BENCH_NAMES = ("decode", "attention", "train", "evaluate")


def bench_name(text: str) -> str:
    if text not in BENCH_NAMES:
        raise argparse.ArgumentTypeError(f"unknown benchmark {text!r}; choose one of: {', '.join(BENCH_NAMES)}")
    return text


def _model_args(parser):
    parser.add_argument("--config", choices=list(CONFIGS), default="default", help="model size (default: default)")
    parser.add_argument("--data-root", type=existing_dir, default=DEFAULT_ROOT, help="data folder (emoji set or the lab's)")


def _decode_args(parser, defaults: DecodeSettings = DecodeSettings(), mvtm: Path = SHIPPED_MVTM, pixels: bool = True):
    """The decoding options, defaulting to ``defaults``; ``pixels``: inpainting's round trips and blur too."""
    parser.add_argument("--vq", type=existing_file, default=SHIPPED_VQ, help="tokenizer checkpoint")
    parser.add_argument("--mvtm", type=existing_file, default=mvtm, help="transformer checkpoint")
    parser.add_argument("--schedule", choices=list(SCHEDULES), default=defaults.schedule)
    parser.add_argument("--steps", "-T", type=step_count, default=defaults.steps,
                        help="decoding steps T, from 1 to the N tokens of an image (more would leave steps with nothing to decode)")
    parser.add_argument("--temperature", type=number(0), default=defaults.temperature,
                        help="Gumbel noise scale τ (annealed), finite and ≥ 0")
    parser.add_argument("--sweet-spot", type=integer(1), default=defaults.sweet_spot, help="stop after this many of the T steps")
    parser.add_argument("--sample-temperature", type=number(0, low_open=True), default=defaults.sample_temperature,
                        help="sample codes from softmax(logits / s), finite and > 0; 1 = MaskGIT's sampling, smaller is greedier")
    parser.add_argument("--first-sample-temperature", type=number(0, low_open=True), default=defaults.first_sample_temperature,
                        help="the first step's s, finite and > 0, falling linearly to --sample-temperature by step T "
                             "(T = 1 samples at it); not given: every step samples at --sample-temperature")
    if pixels:
        parser.add_argument("--retokenize", type=integer(0), default=defaults.retokenize,
                            help="encode and decode the inpainted image (known pixels pasted back) again this many times")
        parser.add_argument("--blur", type=number(0), default=defaults.blur,
                            help="then blur the generated pixels with a Gaussian of this σ in pixels, finite and ≥ 0 (0: sharp)")
    parser.add_argument("--cfg", dest="guidance", type=number(0), default=defaults.guidance,
                        help=f"classifier-free guidance w, finite and ≥ 0, with a class label: 0 unconditional, "
                             f"1 the conditional model, > 1 guided (default {defaults.guidance:g})")
    parser.add_argument("--seed", type=integer(0), default=0)
    parser.add_argument("--batch-size", type=POSITIVE, default=64)
    parser.add_argument("--fused-attention", action="store_true", help="torch's SDPA kernel (faster on a GPU)")


def settings_from(args, defaults: DecodeSettings = DecodeSettings()) -> DecodeSettings:
    """The ``DecodeSettings`` the decoding options name (``defaults`` for the ones a command lacks)."""
    return replace(defaults, **{f.name: getattr(args, f.name) for f in fields(DecodeSettings) if hasattr(args, f.name)})


def class_name(text: str) -> int:
    try:
        return class_id(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def label_choice(text: str):
    """``true`` (each test image's own class) or a class name, as its id."""
    return "true" if text.strip().lower() == "true" else class_name(text)


def conditional_pair(args):
    """Refuse a --mvtm that cannot take a label before any work, naming the conditional checkpoint."""
    from maskgit_lab.checkpoint import read_checkpoint

    if not read_checkpoint(args.mvtm, "mvtm")["config"].get("num_classes"):
        raise UsageError(f"--mvtm {args.mvtm} is unconditional and takes no class label; "
                         f"pass --mvtm {SHIPPED_MVTM_COND} (or another train-mvtm --conditional checkpoint)")


def _overwrite_arg(parser, what: str):
    parser.add_argument("--overwrite", action="store_true", help=f"replace {what}")


def cmd_data(args):
    from maskgit_lab.data import prepare, verify

    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file; give the data folder")
    if args.action == "prepare":
        if args.source is None:
            raise UsageError("data prepare needs --from PACKAGE.tgz (get it with `npm pack emoji-datasource-google@16.0.0`)")
        stats = prepare(args.source, args.out)
        cover = stats["coverage_all"]
        print(f"wrote {args.out}: {stats['train_images']} train and {stats['test_images']} test images "
              f"({stats['groups']} emoji groups); masks hide {cover['min']:.0%}–{cover['max']:.0%} of the pixels, "
              f"{cover['mean']:.0%} on average")
        return 0
    problems = verify(args.out)
    for line in problems:
        print(line)
    print("data OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def _check_export(args):
    """Before training, so a long run does not end in a refused export."""
    if args.export and args.export.resolve() == args.run_dir.resolve():
        raise UsageError(f"--export {args.export} is the --run-dir; give the checkpoint a file name of its own, "
                         f"e.g. --export {args.run_dir.with_suffix('.pt')}")
    if args.export and args.export.exists() and not args.overwrite:
        raise UsageError(f"--export {args.export} already exists; pick another file or pass --overwrite to replace it")


def _finish_training(run_dir, kind: str, args):
    """Export (rank 0 alone under torchrun), then leave the process group with the other ranks."""
    from maskgit_lab import distributed
    from maskgit_lab.train import export

    if args.export and distributed.setup().main:
        print(f"exported {export(run_dir, kind, args.export, overwrite=args.overwrite)}")
    distributed.finish()


def cmd_train_vq(args):
    from maskgit_lab.train import VQTrainConfig, train_vq

    _check_export(args)
    cfg = get_config(args.config).vq
    cfg = replace(cfg, encoder=args.encoder or cfg.encoder, num_codes=args.num_codes or cfg.num_codes)
    run_dir = train_vq(cfg, dataclass_from(args, VQTrainConfig), args.run_dir, args.data_root, resume=args.resume)
    _finish_training(run_dir, "vq", args)
    return 0


def cmd_train_mvtm(args):
    from maskgit_lab.train import MVTMTrainConfig, train_mvtm

    _check_export(args)
    cfg = get_config(args.config).transformer
    cfg = replace(cfg, num_codes=args.num_codes or cfg.num_codes)
    if args.dropout is not None:
        cfg = replace(cfg, dropout=args.dropout, attn_drop=args.dropout)
    if args.conditional:
        cfg = replace(cfg, num_classes=NUM_CLASSES)
    run_dir = train_mvtm(cfg, dataclass_from(args, MVTMTrainConfig), args.tokenizer, args.run_dir, args.data_root,
                         resume=args.resume)
    _finish_training(run_dir, "mvtm", args)
    return 0


def cmd_ship(args):
    from maskgit_lab.train import export

    dest = args.to or {"vq": SHIPPED_VQ, "mvtm": SHIPPED_MVTM}[args.kind]
    if SHIPPED_CHECKPOINTS.resolve() not in Path(dest).resolve().parents:
        raise UsageError(f"--to {dest} is outside {SHIPPED_CHECKPOINTS}; ship writes the course's checkpoints only "
                         f"(export anywhere else with train-{args.kind} --export)")
    if Path(dest).exists() and not args.overwrite:
        raise UsageError(f"{dest} is a shipped checkpoint; pass --overwrite to replace it with {args.run_dir}")
    print(f"shipped {args.run_dir} as {export(args.run_dir, args.kind, dest, overwrite=args.overwrite)}")
    return 0


def cmd_inpaint(args):
    from maskgit_lab.data import ground_truth_dir
    from maskgit_lab.evaluate import inpaint_test_set
    from maskgit_lab.outputs import OutputFolder

    check_decoding(args, args.config)
    if args.label is not None:
        conditional_pair(args)
    settings = settings_from(args)
    out = OutputFolder(args.out, "inpaint", args.overwrite, ground_truth=ground_truth_dir(args.data_root),
                       vq=args.vq.resolve(), mvtm=args.mvtm.resolve(), settings=settings.label, seed=args.seed,
                       label=args.label)
    written = inpaint_test_set(args.vq, args.mvtm, args.data_root, out, settings, seed=args.seed, batch_size=args.batch_size,
                               limit=args.limit, config=get_config(args.config), fused_attention=args.fused_attention,
                               label=args.label)
    print(f"wrote {written}")
    return 0


def cmd_generate(args):
    from maskgit_lab.checkpoint import load_pair
    from maskgit_lab.evaluate import save_images
    from maskgit_lab.generate import generate_batched
    from maskgit_lab.outputs import OutputFolder
    from maskgit_lab.utils import default_device

    check_decoding(args, args.config)
    conditional_pair(args)
    settings = settings_from(args, GENERATION)
    out = OutputFolder(args.out, "generate", args.overwrite, vq=args.vq.resolve(), mvtm=args.mvtm.resolve(),
                       settings=settings.label, seed=args.seed, label=SHORT_NAMES[args.label])
    tokenizer, model = load_pair(args.vq, args.mvtm, device=default_device(), expect=get_config(args.config))
    model.use_fused_attention(args.fused_attention)
    labels = torch.full((args.n,), args.label, dtype=torch.long)
    images = generate_batched(tokenizer, model, labels, settings, args.batch_size, args.seed)
    save_images(images, [f"{SHORT_NAMES[args.label]}_{i:03d}" for i in range(args.n)], out.claim())
    print(f"wrote {args.n} images of {CATEGORIES[args.label]} ({settings.label}) to {out.finish()}")
    return 0


def cmd_generation_quality(args):
    from maskgit_lab.checkpoint import load_model, load_pair
    from maskgit_lab.generation_quality import generation_table, markdown_table, write_rows
    from maskgit_lab.outputs import OutputFolder
    from maskgit_lab.utils import default_device

    conditional_pair(args)
    out = OutputFolder(args.out, "generation-quality", args.overwrite, vq=args.vq.resolve(), mvtm=args.mvtm.resolve(),
                       baseline=args.baseline.resolve(), limit=args.limit)
    device = default_device()
    tokenizer, model = load_pair(args.vq, args.mvtm, device=device)
    baseline = load_model(args.baseline, "mvtm", device=device)
    rows = generation_table(tokenizer, model, baseline, args.data_root, limit=args.limit)
    folder = out.claim()
    table = markdown_table(rows)
    (folder / "generation.md").write_text(table + "\n")
    write_rows(rows, folder / "generation.json")
    print(table)
    print(f"wrote generation.md and generation.json to {out.finish()}")
    return 0


def cmd_fid(args):
    from maskgit_lab.fid import fid_folders, folder_warnings, format_result

    for line in folder_warnings(args.dir_a, args.dir_b):
        print(f"warning: {line}", file=sys.stderr)
    print(format_result(fid_folders(args.dir_a, args.dir_b)))
    return 0
def cmd_score_tokenizer(args):
    from maskgit_lab.checkpoint import load_model
    from maskgit_lab.quality import markdown_table, score_tokenizer

    result = score_tokenizer(load_model(args.vq, "vq"), args.data_root, args.limit)
    print(markdown_table(result["rows"]))
    verdict = "meets" if result["ratio"] <= 0.5 else "misses"
    print(f"floor FID {result['floor']:.1f} / ceiling FID {result['ceiling']:.1f} = {result['ratio']:.2f} "
          f"({verdict} the target ≤ 0.5)")
    return 0


def cmd_modelability(args):
    from maskgit_lab.checkpoint import load_model
    from maskgit_lab.data import load_test_batch
    from maskgit_lab.modelability import diagnose_tokenizer, probe

    tokenizer = load_model(args.vq, "vq")
    test = load_test_batch(args.data_root, args.limit, needs_gt="which the diagnostics encode")
    d = diagnose_tokenizer(tokenizer, test)
    print(f"{args.vq}: {tokenizer.cfg.encoder} encoder, K={tokenizer.cfg.num_codes}, {len(test['names'])} test images")
    print(f"  codes used {d['codes_used']}, perplexity {d['perplexity']:.1f} ({d['entropy_bits']:.2f} bits)")
    print(f"  white patches: {d['white_share']:.1%} of tokens, {d['white_codes']} codes, {d['white_entropy_bits']:.2f} bits, "
          f"top code {d['white_top_share']:.1%}")
    print(f"  flat patches: {d['flat_share']:.1%} of tokens, H(code | colour) = {d['flat_conditional_bits']:.2f} bits")
    print(f"  known tokens changed by the hole (masked image vs ground truth): {d['context_shift']:.1%}")
    if args.probe_steps:
        p = probe(args.vq, args.probe_dir, args.probe_steps, args.data_root, inpaint_masks=args.probe_inpaint_masks)
        print(f"  MVTM probe, {p['probe_steps']} steps ({args.probe_inpaint_masks:.0%} of the rows hole-masked): "
              f"test masked-token accuracy {p['probe_acc_50']:.3f} at 50 %, {p['probe_acc_90']:.3f} at 90 % masked")
    return 0


def cmd_bench(args):
    from maskgit_lab.bench import run_benchmarks

    run_benchmarks(args.which or ["decode", "attention"], quick=args.quick, config=args.config)
    return 0


def cmd_demo(args):
    from maskgit_lab.demo import run_demo
    from maskgit_lab.outputs import OutputFolder

    check_decoding(args)
    out = OutputFolder(args.out, "demo", args.overwrite)
    folder = out.claim()  # at the start, not at the end: a quick training run resumes inside it
    run_demo(folder, data_root=args.data_root, vq=args.vq, mvtm=args.mvtm, rows=args.rows,
             settings=DecodeSettings(schedule=args.schedule, steps=args.steps), full=args.full, limit=args.limit)
    out.finish()
    return 0


RESUME_HELP = ("continue the run in --run-dir. Of its settings only {safe} may change (a larger --steps trains on "
               "past the planned end, at the learning rate the schedule ended with); each change starts a phase, "
               "numbered in log.csv and described in phases.json. Other settings must stay the same")


def build_parser() -> argparse.ArgumentParser:
    from maskgit_lab.train import MVTMTrainConfig, VQTrainConfig

    parser = Parser(prog="python -m maskgit_lab", description="MaskGIT inpainting, as a course.")
    parser.add_argument("--threads", type=POSITIVE, default=None,
                        help="CPU threads for torch (default: all cores; use 1 when another job shares the machine)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="rebuild or verify the embedded emoji data")
    p.add_argument("action", choices=["prepare", "verify"])
    p.add_argument("--from", dest="source", type=existing_file, help="emoji-datasource-google-16.0.0.tgz")
    p.add_argument("--out", "--root", dest="out", type=Path, default=DEFAULT_ROOT, help="the data folder to write or check")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("train-vq", help="train the VQ tokenizer (stage 1)")
    _model_args(p)
    add_dataclass_args(p, VQTrainConfig)
    p.add_argument("--encoder", choices=list(ENCODERS), help="override the config's encoder (conv: sees past its patch; "
                   "patch: each token sees its own patch only)")
    p.add_argument("--num-codes", type=integer(2, "the codebook size K"), help="override the config's codebook size K")
    p.add_argument("--run-dir", type=folder, default="runs/vq")
    p.add_argument("--resume", action="store_true", help=RESUME_HELP.format(safe=", ".join(VQTrainConfig.SAFE_TO_CHANGE)))
    p.add_argument("--export", type=checkpoint_file, help="write the finished model as a checkpoint here (not in data/: see ship)")
    _overwrite_arg(p, "an existing --export file")
    p.set_defaults(func=cmd_train_vq)

    p = sub.add_parser("train-mvtm", help="train the transformer with masked visual token modeling (stage 2)")
    _model_args(p)
    add_dataclass_args(p, MVTMTrainConfig)
    p.add_argument("--tokenizer", type=existing_file, default=SHIPPED_VQ, help="tokenizer checkpoint to train on")
    p.add_argument("--num-codes", type=integer(2, "the codebook size K"),
                   help="override the config's codebook size K (the tokenizer's K, when it was trained with --num-codes)")
    p.add_argument("--dropout", type=number(0.0, 1.0, high_open=True),
                   help="override the config's dropout rate (residual and attention); --init may change it")
    p.add_argument("--conditional", type=boolean, default=False,
                   help=f"learn the {NUM_CLASSES} emoji categories as class labels (maskgit_lab.classes), "
                        f"each dropped with probability --p-uncond; --init may name an unconditional transformer")
    p.add_argument("--run-dir", type=folder, default="runs/mvtm")
    p.add_argument("--resume", action="store_true", help=RESUME_HELP.format(safe=", ".join(MVTMTrainConfig.SAFE_TO_CHANGE)))
    p.add_argument("--export", type=checkpoint_file, help="write the finished model as a checkpoint here (not in data/: see ship)")
    _overwrite_arg(p, "an existing --export file")
    p.set_defaults(func=cmd_train_mvtm)

    p = sub.add_parser("ship", help="replace a shipped checkpoint in data/checkpoints/ with a run's model (the only way)")
    p.add_argument("kind", choices=["vq", "mvtm"])
    p.add_argument("run_dir", type=existing_dir, help="the run directory to export")
    p.add_argument("--to", type=Path, help=f"a file under {SHIPPED_CHECKPOINTS} (default: the shipped vq.pt or mvtm.pt)")
    _overwrite_arg(p, "the shipped file (required when it exists)")
    p.set_defaults(func=cmd_ship)

    p = sub.add_parser("inpaint", help="inpaint the test set into a folder of PNGs (stage 3)")
    _model_args(p)
    _decode_args(p)
    p.add_argument("--out", type=folder, default="artifacts/inpaint",
                   help="an empty folder, or one holding an earlier inpaint's results (they are removed first)")
    _overwrite_arg(p, "the images of a folder holding other files")
    p.add_argument("--limit", type=POSITIVE, default=None, help="only the first N test images")
    p.add_argument("--label", type=label_choice, default=None,
                   help="complete every image as this class (a --mvtm trained with --conditional), or 'true' for "
                        "each image's own class; default: no label")
    p.set_defaults(func=cmd_inpaint)

    p = sub.add_parser("generate", help="generate images of one class from an empty canvas (conditional MaskGIT)")
    _model_args(p)
    _decode_args(p, GENERATION, SHIPPED_MVTM_COND, pixels=False)
    p.add_argument("--label", type=class_name, required=True, help=f"the class: {', '.join(SHORT_NAMES)}")
    p.add_argument("-n", type=integer(1, "the number of images"), default=16, help="how many images")
    p.add_argument("--out", type=folder, default="artifacts/generate",
                   help="an empty folder, or one holding an earlier generate's images (they are removed first)")
    _overwrite_arg(p, "the images of a folder holding other files")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("generation-quality", help="the generation table: FID, KID and class accuracy of generated "
                       "images against the whole test set, every T, schedule and w (slow: hours on one CPU thread)")
    p.add_argument("--data-root", type=existing_dir, default=DEFAULT_ROOT, help="data folder (emoji set or the lab's)")
    p.add_argument("--vq", type=existing_file, default=SHIPPED_VQ, help="tokenizer checkpoint")
    p.add_argument("--mvtm", type=existing_file, default=SHIPPED_MVTM_COND, help="class-conditional transformer checkpoint")
    p.add_argument("--baseline", type=existing_file, default=SHIPPED_MVTM,
                   help="the baseline row's transformer, given no label (default: the shipped unconditional one)")
    p.add_argument("--limit", type=POSITIVE, default=None, help="score only the first N test images (not for publishing)")
    p.add_argument("--out", type=folder, default="artifacts/generation-quality",
                   help="an empty folder, or one holding an earlier table (it is replaced)")
    _overwrite_arg(p, "the files of a folder holding other files")
    p.set_defaults(func=cmd_generation_quality)

    p = sub.add_parser("fid", help="FID (and KID) between two folders of images")
    p.add_argument("dir_a", type=existing_dir)
    p.add_argument("dir_b", type=existing_dir)
    p.set_defaults(func=cmd_fid)

    p = sub.add_parser("score-tokenizer", help="FID of the tokenizer floor against gray and white fill")
    p.add_argument("--vq", type=existing_file, default=SHIPPED_VQ, help="tokenizer checkpoint")
    p.add_argument("--data-root", type=existing_dir, default=DEFAULT_ROOT)
    p.add_argument("--limit", type=POSITIVE, default=None, help="only the first N test images")
    p.set_defaults(func=cmd_score_tokenizer)

    p = sub.add_parser("modelability", help="can a transformer predict this tokenizer's tokens? (diagnostics)")
    p.add_argument("--vq", type=existing_file, default=SHIPPED_VQ, help="tokenizer checkpoint")
    p.add_argument("--data-root", type=existing_dir, default=DEFAULT_ROOT)
    p.add_argument("--limit", type=POSITIVE, default=None, help="only the first N test images")
    p.add_argument("--probe-steps", type=integer(0), default=0,
                   help="also train the default transformer this many steps on the tokens and report its accuracy")
    p.add_argument("--probe-inpaint-masks", type=number(0, 1), default=0.5,
                   help="share of the probe's training rows masked like the test holes "
                        "(the candidates in data/checkpoints/README.md were compared at 0.5)")
    p.add_argument("--probe-dir", type=folder, default="runs/probe", help="run directory of the probe (must not exist)")
    p.set_defaults(func=cmd_modelability)

    p = sub.add_parser("bench", help="speed benchmarks, printed as ratios measured in one run")
    p.add_argument("which", nargs="*", type=bench_name,
                   help=f"any of {', '.join(BENCH_NAMES)} (default: decode attention)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    p.add_argument("--config", choices=list(CONFIGS), default="default", help="model size for the train benchmark")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="inpaint test images and save figures")
    p.add_argument("--data-root", type=existing_dir, default=DEFAULT_ROOT)
    p.add_argument("--vq", type=not_a_folder, default=SHIPPED_VQ, help="tokenizer checkpoint (trained briefly when missing)")
    p.add_argument("--mvtm", type=not_a_folder, default=SHIPPED_MVTM, help="transformer checkpoint (trained briefly when missing)")
    p.add_argument("--out", type=folder, default="artifacts/demo",
                   help="an empty folder, or one holding an earlier demo's figures (they are removed first)")
    _overwrite_arg(p, "the images of a folder holding other files")
    p.add_argument("--rows", type=POSITIVE, default=6, help="test images to show")
    p.add_argument("--full", action="store_true", help="score every schedule × T and the sweet spot (slow)")
    p.add_argument("--limit", type=POSITIVE, default=None, help="score only the first N test images")
    p.add_argument("--steps", "-T", type=step_count, default=DecodeSettings.steps,
                   help="decoding steps T, from 1 to the N tokens of an image (more would leave steps with nothing to decode)")
    p.add_argument("--schedule", choices=list(SCHEDULES), default=DecodeSettings.schedule)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[list] = None) -> int:
    from maskgit_lab.train import TrainingInterrupted

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingInterrupted as stop:
        again = argv if "--resume" in argv else argv + ["--resume"]
        print(f"{stop}; continue with: python -m maskgit_lab {shlex.join(again)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
