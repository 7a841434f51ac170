"""How good is an inpainting? One table, every row scored the same way on the test set.

Rows: the trivial fills (gray, white: the emoji background), the tokenizer floor (the VQ
reconstruction of the ground truth pasted into the hole: what a perfect token predictor
would score) and MaskGIT for each schedule and number of steps T (plus the sweet spot).
Columns: FID and KID against the ground truth (the same Inception features for every row),
PSNR and SSIM over the hole only, and masked-token accuracy against the ground truth's tokens.

The headline number places a result between the better trivial fill (the ceiling to beat)
and the floor:  gap closed = (ceiling − FID) / (ceiling − floor).

Inception features cost most of the time on a CPU, so nothing is scored twice: a scorer
remembers the features of every image set it has seen (T = 1 decodes the same for every
schedule), and the baseline rows, which depend only on the tokenizer and the test set, can be
kept in a JSON file keyed by the extractor, the test images and the tokenizer's weights.

The rows themselves travel as JSON (``write_rows`` / ``read_rows``): ``make demo`` writes
``quality.json`` beside ``quality.md``, and notebook 05 reads the rows back from it.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

import torch
from tqdm.auto import tqdm

from maskgit_lab.checkpoint import weights_hash
from maskgit_lab.data import DEFAULT_ROOT, load_test_batch, to_uint8
from maskgit_lab.decoding import DecodeSettings
from maskgit_lab.evaluate import inpaint_batched
from maskgit_lab.fid import (
    DEFAULT_STATS_CACHE,
    DEFAULT_TEST_DIR,
    ReferenceStats,
    fid_from_features,
    inception_features,
    kid,
    load_extractor,
    reference_stats,
    statistics,
    stored_features,
)
from maskgit_lab.inpaint import paste_known, token_mask_from_pixels
from maskgit_lab.metrics import psnr_hole, ssim_hole
from maskgit_lab.schedules import SCHEDULES
from maskgit_lab.vq import encode_all

FILLS = {"gray fill": 0.0, "white fill": 1.0}  # pixel values in [-1, 1]


def reference_for(test: dict, data_root, limit, extractor) -> ReferenceStats:
    """Ground-truth features: the shipped cache for the emoji test set (its first rows for the first ``limit``
    images, when it was made by this extractor), else computed."""
    if Path(data_root) == DEFAULT_ROOT and limit is None:
        return reference_stats(DEFAULT_TEST_DIR, DEFAULT_STATS_CACHE, extractor=extractor)
    stored = stored_features(DEFAULT_TEST_DIR, DEFAULT_STATS_CACHE, extractor) if Path(data_root) == DEFAULT_ROOT else None
    features = inception_features(test["gt"], extractor=extractor) if stored is None else stored[: len(test["gt"])]
    return ReferenceStats(*statistics(features), features)


def fill_hole(images: torch.Tensor, known: torch.Tensor, value: float) -> torch.Tensor:
    """Known pixels from ``images``, every unknown pixel set to ``value``."""
    return paste_known(torch.full_like(images, value), images, known)


@torch.no_grad()
def reconstruct(tokenizer, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """The tokenizer's round trip of ``images`` (M, 3, S, S): encode, then decode, on the CPU."""
    device = next(tokenizer.parameters()).device
    codes = encode_all(tokenizer, images, batch_size)
    return torch.cat([tokenizer.decode(c.to(device)).cpu() for c in codes.split(batch_size)])


def tokenizer_floor(tokenizer, gt: torch.Tensor, known: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """VQ reconstruction of the ground truth in the hole, known pixels exact."""
    return paste_known(reconstruct(tokenizer, gt, batch_size), gt, known)


def gap_closed(ceiling: float, floor: float, fid: float) -> float:
    """0 at the ceiling (a trivial fill), 1 at the floor (perfect tokens); may leave [0, 1]."""
    return (ceiling - fid) / (ceiling - floor)


def cached_features(seen: dict, images: torch.Tensor, extractor, progress: bool):
    """Inception features of ``images``, computed once per image set: ``seen`` maps a pixel hash to them."""
    key = hashlib.sha256(to_uint8(images).numpy().tobytes()).hexdigest()
    if key not in seen:
        seen[key] = inception_features(images, progress=progress, extractor=extractor)
    return seen[key]


@dataclass
class Scorer:
    """Scores images (M, 3, S, S) against one test set with one feature extractor."""

    reference: ReferenceStats
    gt: torch.Tensor  # (M, 3, S, S) in [-1, 1]
    known: torch.Tensor  # (M, S, S) bool
    extractor: Optional[object] = None
    progress: bool = True
    seen: dict = field(default_factory=dict, repr=False)  # image-set hash → features

    def features(self, images: torch.Tensor):
        return cached_features(self.seen, images, self.extractor, self.progress)

    def test_set_hash(self) -> str:
        return hashlib.sha256(to_uint8(self.gt).numpy().tobytes() + self.known.numpy().tobytes()).hexdigest()

    def __call__(self, name: str, images: torch.Tensor, **extra) -> dict:
        features = self.features(images)
        kid_mean, _ = kid(features, self.reference.features)
        return {
            "method": name,
            "fid": fid_from_features(features, self.reference.features),
            "kid": kid_mean,
            "psnr_hole": psnr_hole(images, self.gt, self.known).mean().item(),
            "ssim_hole": ssim_hole(images, self.gt, self.known).mean().item(),
            **extra,
        }


def token_accuracy(codes: torch.Tensor, target_codes: torch.Tensor, token_mask: torch.Tensor) -> float:
    """Share of the unknown tokens decoded to exactly the ground truth's code."""
    return (codes[token_mask] == target_codes[token_mask]).float().mean().item()


def baseline_rows(scorer: Scorer, tokenizer, cache: Optional[Path] = None) -> list:
    """Gray fill, white fill and the tokenizer floor; reused from ``cache`` when its key matches."""
    key = None
    if cache is not None:
        extractor = scorer.extractor or load_extractor()
        key = {"extractor": extractor.name, "test_set": scorer.test_set_hash(), "tokenizer": weights_hash(tokenizer)}
        entries = json.loads(Path(cache).read_text()) if Path(cache).is_file() else []
        for entry in entries:
            if entry["key"] == key:
                print(f"baseline rows (fills, tokenizer floor) from {cache}: same extractor, test set and tokenizer")
                return [dict(row) for row in entry["rows"]]
    rows = [scorer(name, fill_hole(scorer.gt, scorer.known, value)) for name, value in FILLS.items()]
    rows.append(scorer("tokenizer floor", tokenizer_floor(tokenizer, scorer.gt, scorer.known)))
    if cache is not None:
        Path(cache).write_text(json.dumps([e for e in entries if e["key"] != key] + [{"key": key, "rows": rows}], indent=1) + "\n")
    return rows


def maskgit_rows(scorer: Scorer, tokenizer, model, masked: torch.Tensor, settings: Sequence[DecodeSettings], seed: int = 0,
                 batch_size: int = 64) -> list:
    """One row per decoding setting, named by its label; the row holds the setting's fields too.

    T = 1 fills every token in its one step, whatever the schedule, so it is decoded and scored
    once per setting less its schedule (its one step's s: ``sample_temperature_at(0)``) and its
    scores are reused for the other schedules' T = 1 rows.
    """
    target_codes = encode_all(tokenizer, scorer.gt)
    token_mask = token_mask_from_pixels(scorer.known, tokenizer.cfg.downsample)
    rows, one_step = [], {}
    for setting in tqdm(settings, desc="settings", disable=not scorer.progress, delay=0.5):
        same = replace(setting, schedule="cosine", sample_temperature=setting.sample_temperature_at(0),
                       first_sample_temperature=None)  # what decides a T = 1 decode
        if setting.steps == 1 and same in one_step:
            rows.append({**one_step[same], "method": setting.label, **asdict(setting)})
            continue
        images, codes = inpaint_batched(tokenizer, model, masked, scorer.known, setting, batch_size, seed,
                                        progress=False, return_codes=True)
        rows.append(scorer(setting.label, images, token_acc=token_accuracy(codes, target_codes, token_mask),
                           **asdict(setting)))
        if setting.steps == 1:
            one_step[same] = rows[-1]
    return rows


def full_settings(schedules=tuple(SCHEDULES), steps=(1, 4, 8, 12)) -> list:
    """Every schedule × T, at the default temperature."""
    return [DecodeSettings(schedule=s, steps=t) for s in schedules for t in steps]


def summarize(rows: list) -> dict:
    """Ceiling (better trivial fill), floor, best MaskGIT row and its gap closed."""
    by_name = {row["method"]: row for row in rows}
    ceiling = min(by_name[name]["fid"] for name in FILLS)
    floor = by_name["tokenizer floor"]["fid"]
    decoded = [row for row in rows if "schedule" in row]
    best = min(decoded, key=lambda row: row["fid"]) if decoded else None
    for row in rows:
        row["gap_closed"] = gap_closed(ceiling, floor, row["fid"])
    return {"ceiling": ceiling, "floor": floor, "best": best}


ROW_FIELDS = ("method", "fid", "kid", "psnr_hole", "ssim_hole")  # every row has these; decoded rows add more


def write_rows(rows: list, path) -> Path:
    """The rows as a JSON list of objects (a decoded row keeps its setting's fields)."""
    Path(path).write_text(json.dumps(rows, indent=1) + "\n")
    return Path(path)


def read_rows(path) -> list:
    """Rows written by ``write_rows``; a file of anything else is refused, naming what is missing."""
    rows = json.loads(Path(path).read_text())
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"{path} is not a list of quality rows; write it with maskgit_lab.quality.write_rows")
    for row in rows:
        missing = [name for name in ROW_FIELDS if name not in row]
        if missing:
            raise ValueError(f"{path}: row {row.get('method', '?')!r} has no {', '.join(missing)}; "
                             f"re-run `python -m maskgit_lab demo` to write the table again")
    return rows


def covers_grid(rows: list) -> bool:
    """True when the decoded rows span more than one schedule and more than one T (``demo --full``)."""
    grid = {(row["schedule"], row["steps"]) for row in rows if row.get("schedule") and not row.get("sweet_spot")}
    return len({s for s, _ in grid}) > 1 and len({t for _, t in grid}) > 1


def markdown_table(rows: list) -> str:
    lines = ["| method | FID ↓ | KID ↓ | PSNR hole ↑ | SSIM hole ↑ | token acc ↑ | gap closed ↑ |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        acc = f"{row['token_acc']:.3f}" if "token_acc" in row else "–"
        lines.append(f"| {row['method']} | {row['fid']:.1f} | {row['kid']:.4f} | {row['psnr_hole']:.2f} | "
                     f"{row['ssim_hole']:.3f} | {acc} | {row['gap_closed']:.2f} |")
    return "\n".join(lines)


def test_set_scorer(data_root=DEFAULT_ROOT, limit=None, extractor=None, progress=True):
    """The test set (ground truth required) and a ``Scorer`` against its reference features."""
    test = load_test_batch(data_root, limit, needs_gt="so nothing can be scored")
    extractor = extractor or load_extractor()
    return Scorer(reference_for(test, data_root, limit, extractor), test["gt"], test["known"], extractor, progress), test


def score_tokenizer(tokenizer, data_root=DEFAULT_ROOT, limit=None, extractor=None, progress=True) -> dict:
    """Trivial fills and this tokenizer's floor; the tokenizer target is floor ≤ 0.5 × ceiling."""
    scorer, _ = test_set_scorer(data_root, limit, extractor, progress)
    rows = baseline_rows(scorer, tokenizer)
    summary = summarize(rows)
    return {"rows": rows, "ratio": summary["floor"] / summary["ceiling"], **summary}
