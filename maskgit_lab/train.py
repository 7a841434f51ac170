"""Training loops for both stages, resumable and logged by steps (not minutes).

Stage 1 (``train_vq``): reconstruction (L1 + MSE) + edge term + VQ loss, then, from
``gan_start`` on, a PatchGAN hinge term weighted adaptively (see ``discriminator``).
With ``init`` + ``decoder_only`` it fine-tunes the decoder of a trained tokenizer: encoder and
codebook are frozen, so every image keeps its tokens and a transformer trained on them stays valid.
Stage 2 (``train_mvtm``): the frozen tokenizer turns every training image (and its
mirror image) into tokens once; the transformer then trains on token grids with the MVTM
loss, AdamW, warm-up + cosine learning rate, and an exponential moving average (EMA) of
its weights, which is what gets exported.

A run directory holds ``state.pt`` (everything needed to resume, rewritten every
``save_every`` steps), ``log.csv`` and ``phases.json``. ``RunDir`` guards it: one run at a time
(a lock), a stale ``*.tmp`` of an interrupted save removed, a run refused before it logged or
saved anything leaves no folder behind, and ``--resume`` allowed to change only the settings in
``SAFE_TO_CHANGE`` (a larger ``steps`` extends the run; each change starts a numbered phase, kept
in ``phases.json`` and in every log row) and, for the transformer, only on the same tokenizer
(its weights' hash is in the state). A batch is at most the training set. Ctrl-C stops at the end
of the current step, saves, and raises ``TrainingInterrupted``. ``export`` turns a finished run of
its stage into a checkpoint (never one still holding its lock).

Under ``torchrun`` both loops train with DistributedDataParallel (see ``distributed``): ``batch_size``
stays the global batch, each rank trains on its share of it, and rank 0 alone logs and saves.
"""

import copy
import csv
import fcntl
import json
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, Optional

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from maskgit_lab import distributed
from maskgit_lab.classes import labels_for, labels_of_test_set
from maskgit_lab.checkpoint import config_from, load_model, save_checkpoint, weights_hash
from maskgit_lab.data import DEFAULT_ROOT, ImageFolder, load_test_batch
from maskgit_lab.discriminator import (
    PatchDiscriminator,
    adaptive_weight,
    edge_loss,
    hinge_d_loss,
    hinge_g_loss,
)
from maskgit_lab.masking import random_token_mask
from maskgit_lab.mvtm import drop_labels, mixed_training_mask, mvtm_loss, training_mask
from maskgit_lab.transformer import BidirectionalTransformer, TransformerConfig
from maskgit_lab.utils import set_seed
from maskgit_lab.vq import RESTART_FROM, VQConfig, VQTokenizer, encode_all


@dataclass
class VQTrainConfig:
    # may differ on --resume: the planned length and how often to log and save
    SAFE_TO_CHANGE: ClassVar[tuple] = ("steps", "log_every", "save_every")

    steps: int = 4000
    batch_size: int = 32
    lr: float = 2e-4
    edge_weight: float = 0.5
    restart_after: int = 50  # a code unused for this many steps restarts from a batch encoding
    restart_from: str = "random"  # "random" batch encodings, or ones drawn ∝ quantisation "error" (vq.RESTART_FROM)
    gan_weight: float = 0.1  # 0 turns the discriminator off
    gan_start: int = 1500  # the discriminator joins once reconstructions are reasonable
    hflip: bool = True
    seed: int = 0
    log_every: int = 50
    save_every: int = 250
    max_images: Optional[int] = None  # use only the first images (tests, quick demos)
    init: str = ""  # start from this tokenizer checkpoint instead of random weights
    decoder_only: bool = False  # with init: freeze encoder and codebook, so the tokens stay exactly the same
    init_decoder: str = ""  # start only the decoder from this tokenizer (a new encoder and codebook learn to feed it)


@dataclass
class MVTMTrainConfig:
    # and how a step is computed: the same gradient (accumulate) or the same model, faster
    SAFE_TO_CHANGE: ClassVar[tuple] = VQTrainConfig.SAFE_TO_CHANGE + ("accumulate", "fused_attention", "compile")

    steps: int = 6000
    batch_size: int = 64
    lr: float = 5e-4
    warmup: int = 300
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    schedule: str = "cosine"
    ema: float = 0.999
    hflip: bool = True
    seed: int = 0
    log_every: int = 50
    save_every: int = 250
    max_images: Optional[int] = None
    accumulate: int = 1  # micro-batches per step: the same gradient as one batch, in less memory
    amp: bool = False  # bf16 autocast (GPU speed; on a CPU it runs, but slower)
    fused_attention: bool = False  # torch's SDPA kernel in place of the hand-built attention
    compile: bool = False  # torch.compile the transformer (GPU; the first steps compile)
    init: str = ""  # start model and EMA from this transformer checkpoint (fresh optimizer and schedule)
    inpaint_masks: float = 0.0  # share of each batch masked with test-like holes instead of MaskGIT's random masks
    p_uncond: float = 0.1  # a conditional model: share of rows whose label is dropped (the null class)


def load_images(root, split: str = "train", max_images: Optional[int] = None, labels: bool = False):
    """All images of a split as one (M, 3, 64, 64) tensor: the data set fits in memory.
    With ``labels``, (images, (M,) class ids)."""
    folder = ImageFolder(root, split)
    count = len(folder) if max_images is None else min(max_images, len(folder))
    images = torch.stack([folder[i] for i in range(count)])
    if not labels:
        return images
    return images, labels_for([f.name for f in folder.files[:count]], root)


def load_test_targets(root, max_images: Optional[int] = None) -> torch.Tensor:
    return load_test_batch(root, max_images, needs_gt="which is needed to validate training")["gt"]


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1).to(images.device), images.flip(-1), images)


def warmup_cosine(step: int, total: int, warmup: int, floor: float = 0.1) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class RunLog:
    """Rows of metrics, appended to ``log.csv`` and kept in the resumable state."""

    def __init__(self, run_dir: Path, rows: Optional[list] = None):
        self.path = run_dir / "log.csv"
        self.rows = rows or []

    def add(self, row: dict):
        self.rows.append(row)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.rows[-1]))
            writer.writeheader()
            writer.writerows(r for r in self.rows if set(r) == set(self.rows[-1]))


class TrainingInterrupted(Exception):
    """Ctrl-C stopped a training run after saving it; the message says where."""


RUN_FILES = ("state.pt", "log.csv", "phases.json", "lock")  # what a run directory may hold


def _lock_holder(lock) -> str:
    """Take the run's lock (an open ``lock`` file) without waiting; "" when taken, else the pid written by its holder."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        return lock.read().strip() or "?"
    return ""


def run_in_use(run_dir) -> str:
    """The pid of the training run holding ``run_dir``'s lock, or "" when none does (the lock is only tried)."""
    lock_path = Path(run_dir) / "lock"
    if not lock_path.exists():
        return ""
    with open(lock_path) as lock:  # closing it drops the lock again
        return _lock_holder(lock)


def _load_state(state_path: Path) -> dict:
    try:
        return torch.load(state_path, map_location="cpu", weights_only=False)
    except Exception:
        raise ValueError(f"{state_path} is not a readable training state (damaged?); "
                         f"start a new run in another --run-dir") from None


def check_batch_size(batch_size: int, count: int, what: str):
    """A batch is drawn from ``count`` rows with replacement: one larger than them repeats rows for no new data,
    and a huge one runs out of memory or takes hours a step with no output. Refused before any work."""
    if batch_size > count:
        raise ValueError(f"--batch-size {batch_size} is more than the {count} {what}; a batch draws from them with "
                         f"replacement, so a larger one only repeats them, at a higher cost per step; use --batch-size ≤ {count}")


def _differences(stored: dict, now: dict) -> dict:
    return {key: [stored[key], now[key]] for key in now if stored.get(key) != now[key]}


class RunDir:
    """A run directory in use: locked, cleaned of stale temp files, and its state checked for ``resume``.

    ``with RunDir(...) as run``: ``run.state`` is the stored state (None for a new run),
    ``run.phases`` the phases so far, and ``run.stop_requested`` turns True on Ctrl-C (one process:
    under torchrun every rank would have to stop at the same step, so there Ctrl-C ends the run).
    """

    def __init__(self, path, resume: bool, model_cfg, train_cfg):
        self.path, self.resume, self.model_cfg, self.train_cfg = Path(path), resume, model_cfg, train_cfg
        self.world = distributed.setup()
        self.state, self.phases, self.stop_requested = None, [], False
        self._lock, self._old_handler = None, None
        self._new_folders, self._new_lock = [], False  # what this run created: removed again if it ends before saving

    def __enter__(self):
        self.world.share(self.train_cfg.batch_size)  # a global batch the processes cannot split: refused before any write
        try:
            self._refuse_foreign_files()
            if self.world.main:
                self._take_lock()
                self._remove_stale_tmp()
            self._check_state()
        except BaseException:
            self._leave_nothing_unsaved()
            self._release()
            raise
        if self.world.size == 1 and threading.current_thread() is threading.main_thread():
            self._old_handler = signal.signal(signal.SIGINT, self._on_ctrl_c)
        return self

    def __exit__(self, failed, *exc):
        if failed is not None:
            self._leave_nothing_unsaved()
        self._release()

    def _leave_nothing_unsaved(self):
        """A run refused or failed before it logged or saved anything (a bad --data-root, --init or --tokenizer,
        --resume of a missing run) leaves no folder holding only its lock: remove what it created."""
        if self._lock is None or any((self.path / name).exists() for name in ("state.pt", "log.csv")):
            return  # not ours (another run holds the lock), or there is something to resume
        (self.path / "phases.json").unlink(missing_ok=True)
        if self._new_lock:
            (self.path / "lock").unlink()  # before the lock is dropped, so no other run takes a file about to go
        for folder in self._new_folders:  # the run directory first, then the parents made for it
            if any(folder.iterdir()):
                break
            folder.rmdir()

    def _release(self):
        if self._old_handler is not None:
            signal.signal(signal.SIGINT, self._old_handler)
            self._old_handler = None
        if self._lock is not None:
            self._lock.close()  # closing the file drops its lock
            self._lock = None

    def _on_ctrl_c(self, signum, frame):
        self.stop_requested = True
        signal.signal(signal.SIGINT, self._old_handler)  # a second Ctrl-C stops at once
        print("\nCtrl-C: stopping after this step and saving (Ctrl-C again to stop without saving)", flush=True)

    def _refuse_foreign_files(self):
        if self.resume or not self.path.is_dir():
            return
        others = sorted(p.name for p in self.path.iterdir() if p.name not in RUN_FILES and p.suffix != ".tmp")
        if others:
            raise FileExistsError(f"--run-dir {self.path} holds other files ({', '.join(others[:3])}); "
                                  f"give a new or empty folder for the run")

    def _take_lock(self):
        self._new_folders = [folder for folder in (self.path, *self.path.parents) if not folder.exists()]
        self._new_lock = not (self.path / "lock").exists()
        self.path.mkdir(parents=True, exist_ok=True)
        lock = open(self.path / "lock", "a+")
        holder = _lock_holder(lock)
        if holder:
            lock.close()
            raise FileExistsError(f"--run-dir {self.path} is in use by another training run (pid {holder}); "
                                  f"wait for it to finish, or give another --run-dir")
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def _remove_stale_tmp(self):
        for stale in sorted(self.path.glob("*.tmp")):
            stale.unlink()
            print(f"note: removed {stale}, left by an interrupted save (the saved state beside it is intact)")

    def _check_state(self):
        state_path = self.path / "state.pt"
        if not self.resume:
            if state_path.exists():
                raise FileExistsError(f"{self.path} already holds a run; pass --resume to continue it or pick another --run-dir")
            self.phases = [{"phase": 1, "start_step": 0, "steps": self.train_cfg.steps, "changes": {}}]
            return
        if not state_path.exists():
            raise FileNotFoundError(f"nothing to resume: {state_path} does not exist")
        state = _load_state(state_path)
        # a setting added after the run started counts as its default
        model_changes = _differences({**asdict(type(self.model_cfg)()), **state["model_config"]}, asdict(self.model_cfg))
        train_changes = _differences({**asdict(type(self.train_cfg)()), **state["train_config"]}, asdict(self.train_cfg))
        refused = list(model_changes) + [k for k in train_changes if k not in self.train_cfg.SAFE_TO_CHANGE]
        if refused:
            changes = {**model_changes, **train_changes}
            named = "; ".join(f"{k} was {changes[k][0]!r}, now {changes[k][1]!r}" for k in refused)
            raise ValueError(f"{self.path} was started with other settings ({named}); resume with the same values "
                             f"(only {', '.join(self.train_cfg.SAFE_TO_CHANGE)} may change on --resume)")
        if self.train_cfg.steps < state["step"]:
            raise ValueError(f"{self.path} has trained {state['step']} steps already; resume with --steps ≥ {state['step']}")
        first = {"phase": 1, "start_step": 0, "steps": state["train_config"]["steps"], "changes": {}}
        self.phases = state.get("phases") or [first]  # a run saved before phases existed
        if train_changes:
            self.phases.append({"phase": len(self.phases) + 1, "start_step": state["step"],
                                "steps": self.train_cfg.steps, "changes": train_changes})
            if self.world.main:
                changed = ", ".join(f"{k} {old} → {new}" for k, (old, new) in train_changes.items())
                print(f"resuming {self.path} at step {state['step']} as phase {len(self.phases)}: {changed}")
        self.state = state

    @property
    def phase(self) -> int:
        return len(self.phases)

    @property
    def schedule_steps(self) -> int:
        """The length the learning-rate schedule was planned for (the first phase's): extra steps train at its end rate."""
        return self.phases[0]["steps"]

    def interrupted(self, step: int) -> TrainingInterrupted:
        return TrainingInterrupted(f"stopped by Ctrl-C after step {step} of {self.train_cfg.steps}; "
                                   f"saved {self.path / 'state.pt'}")

    def write_phases(self):
        if self.world.main:
            self.path.mkdir(parents=True, exist_ok=True)
            (self.path / "phases.json").write_text(json.dumps(self.phases, indent=1, default=str) + "\n")


def _restore(run: RunDir, parts: dict, generator: torch.Generator):
    """Load every part's state_dict and the RNGs from the run's state; returns (log, step, start time)."""
    log, step, state = RunLog(run.path), 0, run.state
    if state is not None:
        for name, part in parts.items():
            part.load_state_dict(state[name])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])  # dropout and code restarts draw from it
        rows = [{"phase": 1, **row} for row in state["log"]]  # rows logged before phases existed
        log, step = RunLog(run.path, rows), state["step"]
    run.write_phases()
    started = time.time() - (log.rows[-1]["seconds"] if log.rows else 0.0)
    return log, step, started


def _snapshot(parts: dict, generator, step: int, log: RunLog, run: RunDir, **extra) -> dict:
    state = {name: part.state_dict() for name, part in parts.items()}
    state.update(generator=generator.get_state(), torch_rng=torch.get_rng_state(), step=step, log=log.rows,
                 model_config=asdict(run.model_cfg), train_config=asdict(run.train_cfg), phases=run.phases, **extra)
    return state


def _save_state(run_dir: Path, state: dict):
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "state.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(run_dir / "state.pt")


def _save_on_rank_0(world: distributed.World, run_dir: Path, state: dict):
    """Rank 0 writes the state (every rank holds the same one); the others wait until it is on disk."""
    if world.main:
        _save_state(run_dir, state)
    distributed.barrier()


@torch.no_grad()
def evaluate_vq(tokenizer: VQTokenizer, images: torch.Tensor, batch_size: int = 64) -> dict:
    tokenizer.eval()
    errors, indices = [], []
    for chunk in images.split(batch_size):
        recon, _, idx, _ = tokenizer(chunk)
        errors.append(F.mse_loss(recon.clamp(-1, 1), chunk, reduction="none").mean(dim=(1, 2, 3)))
        indices.append(idx)
    tokenizer.train()
    used = torch.unique(torch.cat(indices)).numel()
    return {"test_mse": torch.cat(errors).mean().item(), "test_codes_used": used}


def _vq_train_mode(tokenizer: VQTokenizer, decoder_only: bool):
    """Training mode, except that a frozen quantizer must not restart codes (eval mode)."""
    tokenizer.train()
    if decoder_only:
        tokenizer.encoder.eval()
        tokenizer.quantizer.eval()


def train_vq(cfg: VQConfig, tcfg: VQTrainConfig, run_dir, data_root=DEFAULT_ROOT, resume=False, progress=True):
    """Train the tokenizer; returns the run directory."""
    with RunDir(run_dir, resume, cfg, tcfg) as run:
        _train_vq(run, data_root, progress)
    return run.path


def _train_vq(run: RunDir, data_root, progress: bool):
    cfg, tcfg, world = run.model_cfg, run.train_cfg, run.world
    rows = world.share(tcfg.batch_size)  # this rank's rows of every global batch
    generator = set_seed(tcfg.seed)
    device = world.device
    images = load_images(data_root, "train", tcfg.max_images)
    check_batch_size(tcfg.batch_size, images.shape[0], "training images")
    test_images = load_test_targets(data_root, tcfg.max_images).to(device)
    tokenizer = VQTokenizer(cfg).to(device)
    if tcfg.init:
        tokenizer.load_state_dict(load_model(tcfg.init, "vq", expect=cfg).state_dict())
    elif tcfg.decoder_only:
        raise ValueError("--decoder-only fine-tunes a trained tokenizer's decoder; pass --init CHECKPOINT as well")
    if tcfg.init_decoder:
        donor = load_model(tcfg.init_decoder, "vq")
        decoder_fields = ("channels", "res_blocks", "code_dim", "downsample")  # what the decoder's weights depend on
        if tcfg.init or any(getattr(donor.cfg, f) != getattr(cfg, f) for f in decoder_fields):
            raise ValueError(f"--init-decoder {tcfg.init_decoder} needs the same channels, res_blocks, code_dim and "
                             f"downsample as the tokenizer being trained, and no --init")
        tokenizer.decoder.load_state_dict(donor.decoder.state_dict())
    if tcfg.restart_from not in RESTART_FROM:
        raise ValueError(f"unknown --restart-from {tcfg.restart_from!r}; choose one of: {', '.join(RESTART_FROM)}")
    tokenizer.quantizer.restart_after = tcfg.restart_after
    tokenizer.quantizer.restart_from = tcfg.restart_from
    tokenizer.encoder.requires_grad_(not tcfg.decoder_only)
    tokenizer.quantizer.requires_grad_(not tcfg.decoder_only)
    disc = PatchDiscriminator().to(device)
    trainable = [p for p in tokenizer.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=tcfg.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=tcfg.lr, betas=(0.5, 0.9))
    parts = {"model": tokenizer, "disc": disc, "opt": opt, "opt_d": opt_d}
    log, step, started = _restore(run, parts, generator)
    model = distributed.wrap(tokenizer, world)
    bar = tqdm(range(step, tcfg.steps), initial=step, total=tcfg.steps, desc="train-vq",
               disable=not (progress and world.main), delay=0.5)
    for step in bar:
        _vq_train_mode(tokenizer, tcfg.decoder_only)
        pick = torch.randint(images.shape[0], (tcfg.batch_size,), generator=generator)
        batch = images[pick]
        if tcfg.hflip:
            batch = random_flip(batch, generator)
        batch = batch[rows].to(device)
        recon, vq_loss, _, stats = model(batch)
        rec_loss = F.l1_loss(recon, batch) + F.mse_loss(recon, batch) + tcfg.edge_weight * edge_loss(recon, batch)
        loss = rec_loss + vq_loss
        use_gan = tcfg.gan_weight > 0 and step >= tcfg.gan_start
        gan_term = torch.zeros(())
        if use_gan:
            g_loss = hinge_g_loss(disc(recon))
            gan_term = tcfg.gan_weight * adaptive_weight(rec_loss, g_loss, tokenizer.decoder.to_rgb.weight) * g_loss
            loss = loss + gan_term
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        d_loss = torch.zeros(())
        if use_gan:
            d_loss = hinge_d_loss(disc(batch), disc(recon.detach()))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            distributed.average_gradients(disc)
            opt_d.step()
        last = step + 1 == tcfg.steps
        if (step + 1) % tcfg.log_every == 0 or last:
            losses = distributed.mean_stats({"rec_loss": rec_loss.item(), "vq_loss": vq_loss.item(),
                                             "gan_term": gan_term.item(), "d_loss": d_loss.item()})
            if world.main:  # perplexity and codes used: rank 0's share of the batch
                row = {"step": step + 1, "phase": run.phase, "seconds": round(time.time() - started, 1), **losses,
                       "perplexity": stats["perplexity"], "codes_used": stats["codes_used"]}
                row.update(evaluate_vq(tokenizer, test_images))
                log.add(row)
                bar.set_postfix(mse=f"{row['test_mse']:.4f}", codes=row["test_codes_used"], ppl=f"{row['perplexity']:.0f}")
        if (step + 1) % tcfg.save_every == 0 or last or run.stop_requested:
            _save_on_rank_0(world, run.path, _snapshot(parts, generator, step + 1, log, run))
        if run.stop_requested and not last:
            raise run.interrupted(step + 1)


@torch.no_grad()
def masked_accuracy(model, tokens: torch.Tensor, ratio: float, seed: int = 0, batch_size: int = 256,
                    labels: Optional[torch.Tensor] = None) -> float:
    """Accuracy of the argmax prediction on a fixed random ``ratio`` of masked tokens (given class ids
    ``labels``, or none)."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    hits, total = 0, 0
    for i, chunk in enumerate(tokens.split(batch_size)):
        mask = random_token_mask(chunk.shape[0], chunk.shape[1], ratio, generator=generator)
        chunk, mask = chunk.to(device), mask.to(device)
        inputs = chunk.masked_fill(mask, model.mask_id)
        given = None if labels is None else labels[i * batch_size:i * batch_size + chunk.shape[0]].to(device)
        predicted = (model(inputs) if given is None else model(inputs, given)).argmax(-1)
        hits += (predicted[mask] == chunk[mask]).sum().item()
        total += mask.sum().item()
    model.train(was_training)
    return hits / total


@torch.no_grad()
def update_ema(ema_model, model, decay: float, step: int):
    """EMA of the weights; the decay ramps up so early averages are not stuck at init."""
    decay = min(decay, (1 + step) / (10 + step))
    for ema_p, p in zip(ema_model.parameters(), model.parameters()):
        ema_p.lerp_(p, 1 - decay)


def accumulate_gradients(model, tokens: torch.Tensor, mask: torch.Tensor, tcfg: MVTMTrainConfig,
                         total: Optional[torch.Tensor] = None, labels: Optional[torch.Tensor] = None) -> dict:
    """Backward the MVTM loss of a batch in ``tcfg.accumulate`` micro-batches.

    Each micro-batch's mean loss is weighted by its share of the masked tokens, so the summed
    gradient equals the gradient of the whole batch's mean loss. Returns the batch's stats.
    Under DDP, ``tokens`` and ``mask`` are one rank's rows and ``total`` is the global batch's
    masked count / world size: DDP averages the ranks' gradients into the global batch's gradient,
    and all-reduces only after the last micro-batch. ``labels`` (B,) are the rows' class ids (after dropout).
    """
    total = mask.sum() if total is None else total
    stats = {"loss": 0.0, "masked_acc": 0.0}
    micro_batches = torch.arange(tokens.shape[0], device=tokens.device).chunk(tcfg.accumulate)
    for i, rows in enumerate(micro_batches):
        share = mask[rows].sum() / total
        with distributed.sync_unless_last(model, i + 1 == len(micro_batches)):  # DDP: forward and backward inside
            with torch.autocast(tokens.device.type, dtype=torch.bfloat16, enabled=tcfg.amp):
                loss, micro = mvtm_loss(model, tokens[rows], mask[rows], tcfg.label_smoothing,
                                        None if labels is None else labels[rows])
            (loss * share).backward()
        for key in stats:
            stats[key] += micro[key] * share.item()
    return stats


def init_from(model: BidirectionalTransformer, path):
    """Load ``path``'s weights into ``model``: the same config but for dropout, or an unconditional
    transformer into a conditional one (its class embedding stays at zero: the same model to start)."""
    cfg = model.cfg
    donor = load_model(path, "mvtm", expect=cfg, ignore=cfg.WEIGHTLESS + ("num_classes",))
    if not cfg.num_classes and donor.cfg.num_classes:
        raise ValueError(f"--init {path} is class-conditional; train with --conditional true to continue it")
    if donor.cfg.num_classes not in (0, cfg.num_classes):
        raise ValueError(f"--init {path} has {donor.cfg.num_classes} classes and this model {cfg.num_classes}; "
                         f"start from an unconditional transformer or one with the same classes")
    missing, _ = model.load_state_dict(donor.state_dict(), strict=False)
    assert missing == (["class_emb.weight"] if donor.cfg.num_classes != cfg.num_classes else []), missing


def _same_tokenizer(run: RunDir, tokenizer: VQTokenizer, tokenizer_path) -> str:
    """The tokenizer's weights hash; on --resume, refused unless the run was trained on the same weights (a run
    saved before the hash was recorded is not checked)."""
    digest = weights_hash(tokenizer)
    stored = (run.state or {}).get("tokenizer_hash")
    if stored and stored != digest:
        raise ValueError(f"{run.path} was trained on the tokens of another tokenizer ({run.state['tokenizer']}, weights "
                         f"sha256 {stored[:12]}…, not {digest[:12]}… of --tokenizer {tokenizer_path}); resume with "
                         f"--tokenizer {run.state['tokenizer']}, or start a new --run-dir")
    return digest


def train_mvtm(cfg: TransformerConfig, tcfg: MVTMTrainConfig, tokenizer_path, run_dir, data_root=DEFAULT_ROOT,
               resume=False, progress=True):
    """Train the transformer on tokens of a frozen tokenizer; returns the run directory."""
    with RunDir(run_dir, resume, cfg, tcfg) as run:
        _train_mvtm(run, tokenizer_path, data_root, progress)
    return run.path


def _train_mvtm(run: RunDir, tokenizer_path, data_root, progress: bool):
    cfg, tcfg, world = run.model_cfg, run.train_cfg, run.world
    rows = world.share(tcfg.batch_size)  # this rank's rows of every global batch
    generator = set_seed(tcfg.seed)
    device = world.device
    tokenizer = load_model(tokenizer_path, "vq", device=device)
    tokenizer_hash = _same_tokenizer(run, tokenizer, tokenizer_path)
    if (tokenizer.cfg.num_codes, tokenizer.cfg.num_tokens) != (cfg.num_codes, cfg.num_tokens):
        fix = (f"pass --num-codes {tokenizer.cfg.num_codes}" if tokenizer.cfg.num_tokens == cfg.num_tokens
               else "choose the --config this tokenizer was trained with")
        raise ValueError(f"{tokenizer_path} makes K={tokenizer.cfg.num_codes}, N={tokenizer.cfg.num_tokens}, "
                         f"but the transformer config wants K={cfg.num_codes}, N={cfg.num_tokens}: {fix}")
    images, labels = load_images(data_root, "train", tcfg.max_images, labels=True) if cfg.num_classes else (
        load_images(data_root, "train", tcfg.max_images), None)
    if tcfg.hflip:
        images = torch.cat([images, images.flip(-1)])  # mirror images double the token data
        labels = None if labels is None else torch.cat([labels, labels])
    check_batch_size(tcfg.batch_size, images.shape[0], "training images" + " and their mirror images" * tcfg.hflip)
    tokens = encode_all(tokenizer, images)  # (M, N)
    test_tokens = encode_all(tokenizer, load_test_targets(data_root, tcfg.max_images))
    test_labels = labels_of_test_set(data_root, test_tokens.shape[0]) if cfg.num_classes else None
    per_rank = rows.stop - rows.start
    if per_rank % tcfg.accumulate:
        of_rank = f" ({per_rank} per process)" if world.size > 1 else ""
        raise ValueError(f"batch_size {tcfg.batch_size}{of_rank} must split into accumulate={tcfg.accumulate} equal micro-batches")
    model = BidirectionalTransformer(cfg).to(device).use_fused_attention(tcfg.fused_attention)
    if tcfg.init:
        init_from(model, tcfg.init)
    ema_model = copy.deepcopy(model).eval()
    forward = distributed.wrap(model, world)
    forward = torch.compile(forward) if tcfg.compile else forward
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and "emb" not in name else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tcfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=tcfg.lr, betas=(0.9, 0.95))
    parts = {"model": model, "ema": ema_model, "opt": opt}
    log, step, started = _restore(run, parts, generator)
    model.train()
    bar = tqdm(range(step, tcfg.steps), initial=step, total=tcfg.steps, desc="train-mvtm",
               disable=not (progress and world.main), delay=0.5)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = tcfg.lr * warmup_cosine(step, run.schedule_steps, tcfg.warmup)
        pick = torch.randint(tokens.shape[0], (tcfg.batch_size,), generator=generator)
        batch = tokens[pick].to(device)
        batch_labels = None if labels is None else drop_labels(labels[pick], tcfg.p_uncond, model.null_class, generator).to(device)
        if tcfg.inpaint_masks:
            mask = mixed_training_mask(*batch.shape, tcfg.schedule, tokenizer.cfg.downsample, tcfg.inpaint_masks, generator)
        else:
            mask = training_mask(*batch.shape, tcfg.schedule, generator)
        mask = mask.to(device)
        opt.zero_grad(set_to_none=True)
        stats = accumulate_gradients(forward, batch[rows], mask[rows], tcfg, total=mask.sum() / world.size,
                                     labels=None if batch_labels is None else batch_labels[rows])
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        update_ema(ema_model, model, tcfg.ema, step)
        last = step + 1 == tcfg.steps
        if (step + 1) % tcfg.log_every == 0 or last:
            stats = distributed.mean_stats(stats)
            if world.main:
                row = {"step": step + 1, "phase": run.phase, "seconds": round(time.time() - started, 1), "loss": stats["loss"],
                       "train_masked_acc": stats["masked_acc"], "lr": opt.param_groups[0]["lr"],
                       "test_acc_50": masked_accuracy(ema_model, test_tokens, 0.5),
                       "test_acc_90": masked_accuracy(ema_model, test_tokens, 0.9)}
                if test_labels is not None:  # the same masks, each image given its class
                    row["test_acc_90_label"] = masked_accuracy(ema_model, test_tokens, 0.9, labels=test_labels)
                log.add(row)
                bar.set_postfix(loss=f"{row['loss']:.3f}", acc50=f"{row['test_acc_50']:.3f}")
        if (step + 1) % tcfg.save_every == 0 or last or run.stop_requested:
            _save_on_rank_0(world, run.path, _snapshot(parts, generator, step + 1, log, run, tokenizer=str(tokenizer_path),
                                                       tokenizer_hash=tokenizer_hash))
        if run.stop_requested and not last:
            raise run.interrupted(step + 1)


def export(run_dir, kind: str, dest, half: bool = True, overwrite: bool = False):
    """Turn a run's latest state into a checkpoint (EMA weights for the transformer); an existing
    ``dest`` is replaced only with ``overwrite``. Refused for a run still training (it holds its lock)
    and for a run of the other stage."""
    if Path(dest).exists() and not overwrite:
        raise FileExistsError(f"{dest} already exists; export elsewhere, or pass --overwrite to replace it")
    holder = run_in_use(run_dir)
    if holder:
        raise FileExistsError(f"{run_dir} is still training (pid {holder} holds its lock); export it when that run has finished")
    state_path = Path(run_dir) / "state.pt"
    if not state_path.exists():
        raise FileNotFoundError(f"{run_dir} holds no state.pt: not a training run, or one that has not saved yet")
    state = _load_state(state_path)
    found = "mvtm" if "ema" in state else "vq"  # a transformer's run keeps its EMA, a tokenizer's its discriminator
    if found != kind:
        raise ValueError(f"{run_dir} is a train-{found} run, not train-{kind}: ship it as {found} "
                         f"(python -m maskgit_lab ship {found} {run_dir}), or give a train-{kind} run")
    if kind == "vq":
        model = VQTokenizer(config_from("vq", state["model_config"]))
        model.load_state_dict(state["model"])
    else:
        model = BidirectionalTransformer(config_from("mvtm", state["model_config"]))
        model.load_state_dict(state["ema"])
    meta = {"steps": state["step"], "train_config": state["train_config"], "phases": state.get("phases", []),
            "final": state["log"][-1] if state["log"] else {}}
    save_checkpoint(dest, kind, model, meta=meta, half=half)
    return dest
