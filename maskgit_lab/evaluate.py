"""Inpaint the whole test set in batches and write the results as PNGs.

Output files keep the masked images' names (``image_000.png`` …), so a folder of results
lines up with ``test_gt/`` for FID, exactly as the lab's ``inpainting.py`` writes them.
"""

from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from maskgit_lab.checkpoint import load_pair
from maskgit_lab.classes import labels_of_test_set
from maskgit_lab.data import load_test_batch, to_numpy_image
from maskgit_lab.decoding import DecodeSettings, decode_step
from maskgit_lab.inpaint import inpaint
from maskgit_lab.outputs import OutputFolder
from maskgit_lab.utils import default_device


def save_images(images: torch.Tensor, names, out_dir) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for image, name in zip(images, names):
        Image.fromarray(to_numpy_image(image)).save(out_dir / f"{name}.png")
    return out_dir


def inpaint_batched(tokenizer, model, masked, known, settings: DecodeSettings = DecodeSettings(), batch_size: int = 64,
                    seed: int = 0, progress=True, return_codes: bool = False, step=decode_step, labels=None):
    """``inpaint`` over the whole set, ``batch_size`` images at a time, one seeded generator.

    ``return_codes`` also returns the decoded token grids (M, N), e.g. for token accuracy;
    ``step`` replaces ``decoding.decode_step`` (a student's, for grading); ``labels`` (M,) are
    class ids for a conditional model (None: no label).
    """
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    images, codes = [], []
    label_chunks = [None] * len(masked.split(batch_size)) if labels is None else labels.split(batch_size)
    chunks = list(zip(masked.split(batch_size), known.split(batch_size), label_chunks))
    for chunk, mask, given in tqdm(chunks, desc="inpaint", disable=not progress, delay=0.5):
        out = inpaint(tokenizer, model, chunk.to(device), mask.to(device), settings, generator,
                      return_history=return_codes, step=step, labels=given)
        if return_codes:
            out, history = out
            codes.append(history.tokens[-1].cpu())
        images.append(out.cpu())
    return (torch.cat(images), torch.cat(codes)) if return_codes else torch.cat(images)


def inpaint_test_set(vq_path, mvtm_path, root, out: OutputFolder, settings: DecodeSettings = DecodeSettings(), seed=0,
                     batch_size=64, limit=None, config=None, fused_attention=False, label=None) -> Path:
    """Inpaint the test set into ``out``, claimed only once the images are made: a bad checkpoint or
    test set leaves the folder as it was. ``label``: a class id for every image, ``"true"`` for each
    image's own class (``test/index.csv``), or None for no label."""
    tokenizer, model = load_pair(vq_path, mvtm_path, device=default_device(), expect=config)
    model.use_fused_attention(fused_attention)
    test = load_test_batch(root, limit)
    count = test["masked"].shape[0]
    labels = None if label is None else (labels_of_test_set(root, count) if label == "true"
                                         else torch.full((count,), label, dtype=torch.long))
    if labels is not None:
        model.check_labels(labels, count)
    images = inpaint_batched(tokenizer, model, test["masked"], test["known"], settings, batch_size, seed, labels=labels)
    save_images(images, test["names"], out.claim())
    return out.finish()

