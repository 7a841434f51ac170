"""Checkpoints that carry their own configuration and refuse a mismatched model.

A file holds {"format", "kind" ("vq" | "mvtm"), "config" (the dataclass as a dict),
"state_dict", "meta" (how it was trained)}. Loading rebuilds the model from the stored
config, so there is nothing to get wrong by hand; when the caller expects a config,
every differing field is named in the error. ``load_shipped`` loads the course's trained pair.
"""

import hashlib
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Optional

import torch

from maskgit_lab.transformer import BidirectionalTransformer, TransformerConfig
from maskgit_lab.vq import VQConfig, VQTokenizer

FORMAT = "maskgit-lab/1"
SHIPPED_CHECKPOINTS = Path(__file__).resolve().parent.parent / "data" / "checkpoints"  # the course's trained models
SHIPPED_VQ = SHIPPED_CHECKPOINTS / "vq.pt"
SHIPPED_MVTM = SHIPPED_CHECKPOINTS / "mvtm.pt"
SHIPPED_MVTM_COND = SHIPPED_CHECKPOINTS / "mvtm-cond.pt"  # the class-conditional transformer (generation)
KINDS = {"vq": (VQConfig, VQTokenizer), "mvtm": (TransformerConfig, BidirectionalTransformer)}


def save_checkpoint(path, kind: str, model, meta: Optional[dict] = None, half: bool = False):
    """Write ``model`` with its config; ``half`` stores floating weights as fp16."""
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "kind": kind, "config": asdict(model.cfg), "state_dict": state, "meta": meta or {}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: an interrupted save never leaves a half-written checkpoint


def read_checkpoint(path, kind: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; train one with `python -m maskgit_lab train-{kind}`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch's own message suggests weights_only=False, unsafe for a file of unknown origin
        raise ValueError(f"{path} is not a readable checkpoint (not a torch file, or corrupt or truncated); "
                         f"give a file written by `python -m maskgit_lab train-{kind} --export`, or restore it") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a maskgit-lab checkpoint (format {FORMAT!r} expected)")
    if payload["kind"] != kind:
        raise ValueError(f"{path} holds a {payload['kind']!r} model, but a {kind!r} checkpoint was expected")
    return payload


def config_from(kind: str, stored: dict):
    """The config dataclass of ``kind`` from its stored dict (lists back to tuples)."""
    cls = KINDS[kind][0]
    names = {f.name for f in fields(cls)}
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in stored.items() if k in names}
    return cls(**values)


def config_differences(expected, found) -> list:
    return [
        f"{f.name}: expected {getattr(expected, f.name)!r}, checkpoint has {getattr(found, f.name)!r}"
        for f in fields(expected)
        if getattr(expected, f.name) != getattr(found, f.name)
    ]


def load_model(path, kind: str, expect=None, device="cpu", ignore=()):
    """Rebuild the model stored at ``path``; with ``expect``, refuse any config mismatch but in the
    fields named in ``ignore``."""
    payload = read_checkpoint(path, kind)
    cfg = config_from(kind, payload["config"])
    if expect is not None:
        diffs = config_differences(replace(expect, **{name: getattr(cfg, name) for name in ignore}), cfg)
        if diffs:
            raise ValueError(
                f"{path} was trained with a different {kind} config ({'; '.join(diffs)}); "
                f"pick the matching --config or re-train"
            )
    model = KINDS[kind][1](cfg)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit the stored config ({err}); the file is damaged") from None
    model.meta = payload["meta"]
    return model.to(device).eval()


def weights_hash(model) -> str:
    """SHA-256 of a model's weights (float32, in state_dict order): names a model by content."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def load_pair(vq_path, mvtm_path, device="cpu", expect=None):
    """Tokenizer + transformer, checked to agree on codebook size and token count.

    ``expect`` (a ``configs.ModelConfig``) also checks both against a named configuration, but for
    the transformer's dropout rates (they change training only, and the shipped one was tuned without)
    and its classes (a named size holds an unconditional and a conditional transformer alike).
    """
    tokenizer = load_model(vq_path, "vq", expect=expect and expect.vq, device=device)
    model = load_model(mvtm_path, "mvtm", expect=expect and expect.transformer, device=device,
                       ignore=TransformerConfig.WEIGHTLESS + ("num_classes",))
    vq, tf = tokenizer.cfg, model.cfg
    if (vq.num_codes, vq.num_tokens) != (tf.num_codes, tf.num_tokens):
        raise ValueError(
            f"{mvtm_path} expects K={tf.num_codes} codes and N={tf.num_tokens} tokens, but {vq_path} makes "
            f"K={vq.num_codes}, N={vq.num_tokens}; use the transformer trained on this tokenizer"
        )
    return tokenizer, model


def load_shipped(device="cpu"):
    """The course's trained tokenizer and transformer (``SHIPPED_VQ``, ``SHIPPED_MVTM``)."""
    return load_pair(SHIPPED_VQ, SHIPPED_MVTM, device=device)
