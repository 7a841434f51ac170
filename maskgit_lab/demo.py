"""``make demo``: inpaint test images end to end and save the figures a student looks at.

With the shipped checkpoints in ``data/checkpoints/`` it loads them. Without them it first
trains a deliberately short CPU run of both stages (a few minutes: enough to see the
pipeline work, not to get good pictures) and says so.
"""

from pathlib import Path

import torch

from maskgit_lab.checkpoint import load_pair
from maskgit_lab.configs import get_config
from maskgit_lab.data import DEFAULT_ROOT
from maskgit_lab.evaluate import load_test_batch
from maskgit_lab.inpaint import inpaint
from maskgit_lab.plots import decoding_grid, gamma_figure, image_grid
from maskgit_lab.train import MVTMTrainConfig, VQTrainConfig, export, train_mvtm, train_vq
from maskgit_lab.utils import default_device

QUICK_VQ = VQTrainConfig(steps=200, batch_size=16, gan_weight=0.0, restart_after=10, log_every=100, save_every=50)
QUICK_MVTM = MVTMTrainConfig(steps=300, batch_size=32, warmup=30, log_every=100, save_every=100)


def quick_checkpoints(out: Path, data_root) -> tuple:
    """Train both stages briefly (resuming if interrupted) and export them under ``out``."""
    cfg = get_config("default")
    vq_run, mvtm_run = out / "runs" / "vq", out / "runs" / "mvtm"
    vq_path, mvtm_path = out / "checkpoints" / "vq.pt", out / "checkpoints" / "mvtm.pt"
    if not vq_path.exists():
        train_vq(cfg.vq, QUICK_VQ, vq_run, data_root, resume=(vq_run / "state.pt").exists())
        export(vq_run, "vq", vq_path)
    if not mvtm_path.exists():
        train_mvtm(cfg.transformer, QUICK_MVTM, vq_path, mvtm_run, data_root, resume=(mvtm_run / "state.pt").exists())
        export(mvtm_run, "mvtm", mvtm_path)
    return vq_path, mvtm_path


def run_demo(out, data_root=DEFAULT_ROOT, vq=None, mvtm=None, rows: int = 6, steps: int = 8, schedule: str = "cosine"):
    out = Path(out)
    if vq is None or mvtm is None or not (Path(vq).exists() and Path(mvtm).exists()):
        print(f"no trained checkpoints at {vq} / {mvtm}: training a short CPU demo run first "
              f"({QUICK_VQ.steps} tokenizer steps, {QUICK_MVTM.steps} transformer steps; pictures will be rough)")
        vq, mvtm = quick_checkpoints(out, data_root)
    tokenizer, model = load_pair(vq, mvtm, device=default_device())
    test = load_test_batch(data_root, limit=rows)
    device = next(model.parameters()).device
    result, history = inpaint(tokenizer, model, test["masked"].to(device), test["known"].to(device), steps=steps,
                              schedule=schedule, generator=torch.Generator().manual_seed(0), return_history=True)
    truth = test["gt"] if test["gt"] is not None else test["masked"]
    figures = [
        decoding_grid(tokenizer, test["masked"], history, result.cpu(), truth, out / "decoding_steps.png"),
        image_grid([test["masked"], result.cpu(), truth], ["masked", "inpainted", "ground truth"], out / "inpainted.png"),
        gamma_figure(out / "schedules.png", steps=steps, n0=tokenizer.cfg.num_tokens),
    ]
    for path in figures:
        print(f"saved {path}")
    return figures
