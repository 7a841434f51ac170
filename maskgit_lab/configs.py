"""Named model configurations: one tokenizer + transformer pair per name.

``default`` is the shipped pair and fits a 2-core laptop: 16×16 tokens of 4×4 pixels per
64×64 image, a patch-local encoder (each token sees only its own patch), 1024 codes and a
small transformer (d=256, 6 layers). A local encoder makes tokens the transformer can predict
(``maskgit_lab.modelability``); the finer grid lowers the tokenizer's floor FID from 61.0 to
39.5. ``coarse`` is the pair shipped before it: 8×8 tokens of 8×8 pixels, 128 codes, the same
transformer over a quarter of the sequence (about 7× cheaper per training step, a worse floor). ``lab`` is the original
course setting (16×16 tokens, codebook 1024, d=768, 15 layers, 16 heads, MLP 1536) and wants a GPU.
The comparison that chose them is in ``data/checkpoints/README.md``.
"""

from dataclasses import dataclass, replace

from maskgit_lab.transformer import TransformerConfig
from maskgit_lab.vq import VQConfig


@dataclass
class ModelConfig:
    name: str
    vq: VQConfig
    transformer: TransformerConfig


def _coarse() -> ModelConfig:
    vq = VQConfig(downsample=8, channels=(32, 64, 128), res_blocks=2, num_codes=128, code_dim=64, encoder="patch")
    transformer = TransformerConfig(
        num_codes=vq.num_codes, num_tokens=vq.num_tokens, dim=256, depth=6, num_heads=8, hidden_dim=1024
    )
    return ModelConfig("coarse", vq, transformer)


def _default() -> ModelConfig:
    coarse = _coarse()
    vq = replace(coarse.vq, downsample=4, channels=(32, 64), num_codes=1024)
    transformer = replace(coarse.transformer, num_codes=vq.num_codes, num_tokens=vq.num_tokens)
    return ModelConfig("default", vq, transformer)


def _lab() -> ModelConfig:
    vq = VQConfig(downsample=4, channels=(128, 256), res_blocks=2, num_codes=1024, code_dim=256)
    transformer = TransformerConfig(
        num_codes=vq.num_codes, num_tokens=vq.num_tokens, dim=768, depth=15, num_heads=16, hidden_dim=1536
    )
    return ModelConfig("lab", vq, transformer)


CONFIGS = {"default": _default, "coarse": _coarse, "lab": _lab}


def get_config(name: str) -> ModelConfig:
    if name not in CONFIGS:
        raise ValueError(f"unknown config {name!r}; choose one of: {', '.join(CONFIGS)}")
    return CONFIGS[name]()
