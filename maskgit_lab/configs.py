"""Named model configurations: one tokenizer + transformer pair per name.

``default`` fits a 2-core laptop: 8×8 tokens per 64×64 image, a patch-local encoder (each
token sees only its own 8×8 patch), 128 codes and a small transformer. Fewer codes and a local
encoder make tokens the transformer can predict: see ``maskgit_lab.modelability``. ``lab`` is the
original course setting (16×16 tokens, codebook 1024, d=768, 15 layers, 16 heads, MLP 1536) and
wants a GPU. ``fine`` is ``default`` on a finer grid: 16×16 tokens of 4×4 pixels, 256 codes, a
narrower decoder and the same transformer over four times the sequence.
"""

from dataclasses import dataclass, replace

from maskgit_lab.transformer import TransformerConfig
from maskgit_lab.vq import VQConfig


@dataclass
class ModelConfig:
    name: str
    vq: VQConfig
    transformer: TransformerConfig


def _default() -> ModelConfig:
    vq = VQConfig(downsample=8, channels=(32, 64, 128), res_blocks=2, num_codes=128, code_dim=64, encoder="patch")
    transformer = TransformerConfig(
        num_codes=vq.num_codes, num_tokens=vq.num_tokens, dim=256, depth=6, num_heads=8, hidden_dim=1024
    )
    return ModelConfig("default", vq, transformer)


def _fine() -> ModelConfig:
    default = _default()
    vq = replace(default.vq, downsample=4, channels=(32, 64), num_codes=256)
    transformer = replace(default.transformer, num_codes=vq.num_codes, num_tokens=vq.num_tokens)
    return ModelConfig("fine", vq, transformer)


def _lab() -> ModelConfig:
    vq = VQConfig(downsample=4, channels=(128, 256), res_blocks=2, num_codes=1024, code_dim=256)
    transformer = TransformerConfig(
        num_codes=vq.num_codes, num_tokens=vq.num_tokens, dim=768, depth=15, num_heads=16, hidden_dim=1536
    )
    return ModelConfig("lab", vq, transformer)


CONFIGS = {"default": _default, "fine": _fine, "lab": _lab}


def get_config(name: str) -> ModelConfig:
    if name not in CONFIGS:
        raise ValueError(f"unknown config {name!r}; choose one of: {', '.join(CONFIGS)}")
    return CONFIGS[name]()
