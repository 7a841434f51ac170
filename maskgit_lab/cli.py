"""Command line: ``python -m maskgit_lab {data,train-vq,train-mvtm,inpaint,fid,bench,demo}``.

Each sub-command is a thin shell over the package's functions; training flags are generated
from the training dataclasses, so a new field shows up here with its default.
"""

import argparse
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Optional

from maskgit_lab.checkpoint import SHIPPED_MVTM, SHIPPED_VQ
from maskgit_lab.configs import CONFIGS
from maskgit_lab.data import DEFAULT_ROOT
from maskgit_lab.decoding import DecodeSettings
from maskgit_lab.schedules import SCHEDULES
from maskgit_lab.vq import ENCODERS


def _flag_type(value):
    if isinstance(value, bool):
        return lambda text: text.lower() in ("1", "true", "yes", "on")
    return type(value) if value is not None else int


def add_dataclass_args(parser, cls):
    """One ``--name`` flag per field of ``cls``, defaulting to the field's default."""
    for f in fields(cls):
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=_flag_type(f.default),
                            default=f.default, help=f"(default: {f.default})")


def dataclass_from(args, cls):
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


def step_count(text: str) -> int:
    """argparse type for T: an integer ≥ 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"decoding steps T must be an integer ≥ 1, got {text!r}")
    return int(text)


BENCH_NAMES = ("decode", "attention", "train", "evaluate")


def bench_name(text: str) -> str:
    if text not in BENCH_NAMES:
        raise argparse.ArgumentTypeError(f"unknown benchmark {text!r}; choose one of: {', '.join(BENCH_NAMES)}")
    return text


def _model_args(parser):
    parser.add_argument("--config", choices=list(CONFIGS), default="default", help="model size (default: default)")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_ROOT, help="data folder (emoji set or the lab's)")


def _decode_args(parser):
    parser.add_argument("--vq", type=Path, default=SHIPPED_VQ, help="tokenizer checkpoint")
    parser.add_argument("--mvtm", type=Path, default=SHIPPED_MVTM, help="transformer checkpoint")
    parser.add_argument("--schedule", choices=list(SCHEDULES), default=DecodeSettings.schedule)
    parser.add_argument("--steps", "-T", type=step_count, default=DecodeSettings.steps, help="decoding steps T (≥ 1)")
    parser.add_argument("--temperature", type=float, default=DecodeSettings.temperature, help="Gumbel noise scale τ (annealed)")
    parser.add_argument("--sweet-spot", type=int, default=DecodeSettings.sweet_spot, help="stop after this many of the T steps")
    parser.add_argument("--sample-temperature", type=float, default=DecodeSettings.sample_temperature,
                        help="sample codes from softmax(logits / s); 1 = MaskGIT's sampling, smaller is greedier")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--fused-attention", action="store_true", help="torch's SDPA kernel (faster on a GPU)")


def cmd_data(args):
    from maskgit_lab.data import prepare, verify

    if args.action == "prepare":
        if args.source is None:
            raise SystemExit("data prepare needs --from PACKAGE.tgz (get it with `npm pack emoji-datasource-google@16.0.0`)")
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


def _finish_training(run_dir, kind: str, args):
    """Export (rank 0 alone under torchrun), then leave the process group with the other ranks."""
    from maskgit_lab import distributed
    from maskgit_lab.train import export

    if args.export and distributed.setup().main:
        print(f"exported {export(run_dir, kind, args.export)}")
    distributed.finish()


def cmd_train_vq(args):
    from maskgit_lab.configs import get_config
    from maskgit_lab.train import VQTrainConfig, train_vq

    cfg = get_config(args.config).vq
    cfg = replace(cfg, encoder=args.encoder or cfg.encoder, num_codes=args.num_codes or cfg.num_codes)
    run_dir = train_vq(cfg, dataclass_from(args, VQTrainConfig), args.run_dir, args.data_root, resume=args.resume)
    _finish_training(run_dir, "vq", args)
    return 0


def cmd_train_mvtm(args):
    from maskgit_lab.configs import get_config
    from maskgit_lab.train import MVTMTrainConfig, train_mvtm

    run_dir = train_mvtm(get_config(args.config).transformer, dataclass_from(args, MVTMTrainConfig), args.tokenizer,
                         args.run_dir, args.data_root, resume=args.resume)
    _finish_training(run_dir, "mvtm", args)
    return 0


def cmd_inpaint(args):
    from maskgit_lab.configs import get_config
    from maskgit_lab.evaluate import inpaint_test_set

    settings = DecodeSettings(args.schedule, args.steps, args.temperature, args.sweet_spot, args.sample_temperature)
    out = inpaint_test_set(args.vq, args.mvtm, args.data_root, args.out, settings, seed=args.seed,
                           batch_size=args.batch_size, limit=args.limit, config=get_config(args.config),
                           fused_attention=args.fused_attention)
    print(f"wrote {out}")
    return 0


def cmd_fid(args):
    from maskgit_lab.fid import fid_folders, format_result

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

    run_demo(args.out, data_root=args.data_root, vq=args.vq, mvtm=args.mvtm, rows=args.rows,
             settings=DecodeSettings(schedule=args.schedule, steps=args.steps), full=args.full, limit=args.limit)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m maskgit_lab", description="MaskGIT inpainting, as a course.")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: all cores; use 1 when another job shares the machine)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="rebuild or verify the embedded emoji data")
    p.add_argument("action", choices=["prepare", "verify"])
    p.add_argument("--from", dest="source", type=Path, help="emoji-datasource-google-16.0.0.tgz")
    p.add_argument("--out", "--root", dest="out", type=Path, default=DEFAULT_ROOT, help="the data folder to write or check")
    p.set_defaults(func=cmd_data)

    from maskgit_lab.train import MVTMTrainConfig, VQTrainConfig

    p = sub.add_parser("train-vq", help="train the VQ tokenizer (stage 1)")
    _model_args(p)
    add_dataclass_args(p, VQTrainConfig)
    p.add_argument("--encoder", choices=list(ENCODERS), help="override the config's encoder (conv: sees past its patch; "
                   "patch: each token sees its own patch only)")
    p.add_argument("--num-codes", type=int, help="override the config's codebook size K")
    p.add_argument("--run-dir", type=Path, default=Path("runs/vq"))
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--export", type=Path, help="write the finished model as a checkpoint here")
    p.set_defaults(func=cmd_train_vq)

    p = sub.add_parser("train-mvtm", help="train the transformer with masked visual token modeling (stage 2)")
    _model_args(p)
    add_dataclass_args(p, MVTMTrainConfig)
    p.add_argument("--tokenizer", type=Path, default=SHIPPED_VQ, help="tokenizer checkpoint to train on")
    p.add_argument("--run-dir", type=Path, default=Path("runs/mvtm"))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--export", type=Path)
    p.set_defaults(func=cmd_train_mvtm)

    p = sub.add_parser("inpaint", help="inpaint the test set into a folder of PNGs (stage 3)")
    _model_args(p)
    _decode_args(p)
    p.add_argument("--out", type=Path, default=Path("artifacts/inpaint"))
    p.add_argument("--limit", type=int, default=None, help="only the first N test images")
    p.set_defaults(func=cmd_inpaint)

    p = sub.add_parser("fid", help="FID (and KID) between two folders of images")
    p.add_argument("dir_a", type=Path)
    p.add_argument("dir_b", type=Path)
    p.set_defaults(func=cmd_fid)

    p = sub.add_parser("score-tokenizer", help="FID of the tokenizer floor against gray and white fill")
    p.add_argument("--vq", type=Path, default=SHIPPED_VQ, help="tokenizer checkpoint")
    p.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--limit", type=int, default=None, help="only the first N test images")
    p.set_defaults(func=cmd_score_tokenizer)

    p = sub.add_parser("modelability", help="can a transformer predict this tokenizer's tokens? (diagnostics)")
    p.add_argument("--vq", type=Path, default=SHIPPED_VQ, help="tokenizer checkpoint")
    p.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--limit", type=int, default=None, help="only the first N test images")
    p.add_argument("--probe-steps", type=int, default=0,
                   help="also train the default transformer this many steps on the tokens and report its accuracy")
    p.add_argument("--probe-inpaint-masks", type=float, default=0.5,
                   help="share of the probe's training rows masked like the test holes (as data/checkpoints/next was compared)")
    p.add_argument("--probe-dir", type=Path, default=Path("runs/probe"), help="run directory of the probe (must not exist)")
    p.set_defaults(func=cmd_modelability)

    p = sub.add_parser("bench", help="speed benchmarks, printed as ratios measured in one run")
    p.add_argument("which", nargs="*", type=bench_name,
                   help=f"any of {', '.join(BENCH_NAMES)} (default: decode attention)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    p.add_argument("--config", choices=list(CONFIGS), default="default", help="model size for the train benchmark")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="inpaint test images and save figures")
    p.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--vq", type=Path, default=SHIPPED_VQ)
    p.add_argument("--mvtm", type=Path, default=SHIPPED_MVTM)
    p.add_argument("--out", type=Path, default=Path("artifacts/demo"))
    p.add_argument("--rows", type=int, default=6, help="test images to show")
    p.add_argument("--full", action="store_true", help="score every schedule × T and the sweet spot (slow)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N test images")
    p.add_argument("--steps", "-T", type=step_count, default=DecodeSettings.steps, help="decoding steps T (≥ 1)")
    p.add_argument("--schedule", choices=list(SCHEDULES), default=DecodeSettings.schedule)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[list] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
