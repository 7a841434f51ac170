"""The bidirectional transformer of MaskGIT (Chang et al. 2022, Sec. 3.2; Devlin et al. 2019).

Input: a (B, N) grid of codebook indices in which masked positions hold the extra id
``mask_id = K``. Output: (B, N, K) logits over the K real codes at every position — the
mask id is never a prediction. Token embeddings + learned position embeddings feed
pre-norm blocks of self-attention and an MLP, with no causal mask.

Class-conditional (``num_classes = C > 0``): a class embedding, one row per class plus the null
class C ("no label"), is added to every token's input. MaskGIT prepends a class token instead;
an added embedding keeps the sequence at N tokens, so a trained unconditional transformer's
weights fit unchanged, and, started at zero, it makes the new model that transformer exactly
until training moves it (``--init``). Without labels the model sees the null class.
"""

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
from torch import nn

from maskgit_lab.attention import MultiHeadAttention


@dataclass
class TransformerConfig:
    WEIGHTLESS: ClassVar[tuple] = ("dropout", "attn_drop")  # no weight depends on these: --init may change them

    num_codes: int = 512  # K, the tokenizer's codebook size
    num_tokens: int = 64  # N = h·w tokens per image
    dim: int = 256  # D
    depth: int = 4
    num_heads: int = 8  # H
    hidden_dim: int = 1024  # MLP width
    dropout: float = 0.1
    attn_drop: float = 0.1
    num_classes: int = 0  # C: 0 is unconditional; else C classes and the null class C


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = MultiHeadAttention(cfg.dim, cfg.num_heads, attn_drop=cfg.attn_drop)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.dim, cfg.hidden_dim),
            nn.GELU(),
            nn.Linear(cfg.hidden_dim, cfg.dim),
            nn.Dropout(cfg.dropout),
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, return_attention: bool = False):
        attended = self.attn(self.norm1(x), return_attention=return_attention)
        attended, weights = attended if return_attention else (attended, None)
        x = x + self.drop(attended)
        x = x + self.mlp(self.norm2(x))
        return (x, weights) if return_attention else x


class BidirectionalTransformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.mask_id = cfg.num_codes  # one extra embedding row for [MASK]
        self.tok_emb = nn.Embedding(cfg.num_codes + 1, cfg.dim)
        self.pos_emb = nn.Parameter(torch.zeros(1, cfg.num_tokens, cfg.dim))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.num_codes)  # K classes: [MASK] is never predicted
        self.null_class = cfg.num_classes  # the label of "no label"
        self.class_emb = nn.Embedding(cfg.num_classes + 1, cfg.dim) if cfg.num_classes else None
        self.apply(self._init_weights)
        nn.init.trunc_normal_(self.pos_emb, std=0.02)
        if self.class_emb is not None:
            nn.init.zeros_(self.class_emb.weight)  # a label changes nothing until training teaches it to

    @property
    def conditional(self) -> bool:
        return self.class_emb is not None

    def use_fused_attention(self, fused: bool = True):
        """Switch every block to torch's fused SDPA kernel (or back); returns the model."""
        for block in self.blocks:
            block.attn.fused = fused
        return self

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def check_labels(self, labels: torch.Tensor, batch: int):
        """Refuse labels this model cannot take: an unconditional model, or ids outside [0, C]."""
        if not self.conditional:
            raise ValueError("this transformer is unconditional (num_classes = 0): it takes no class label; "
                             "use a conditional checkpoint, or pass no label")
        if labels.shape != (batch,) or labels.dtype != torch.long:
            raise ValueError(f"labels must be a (B,) = ({batch},) long tensor of class ids, "
                             f"got {labels.dtype} {tuple(labels.shape)}")
        if labels.numel() and (labels.min() < 0 or labels.max() > self.null_class):
            raise ValueError(f"class ids must lie in [0, {self.null_class}] ({self.null_class} = no label)")

    def forward(self, tokens: torch.Tensor, labels: Optional[torch.Tensor] = None, return_attention: bool = False):
        """Logits (B, N, K) for ``tokens`` (B, N); ``labels`` (B,) class ids, None for no label."""
        B, N = tokens.shape
        if N != self.cfg.num_tokens:
            raise ValueError(f"expected {self.cfg.num_tokens} tokens per image, got {N}")
        x = self.tok_emb(tokens) + self.pos_emb  # (B, N, D)
        if labels is not None:
            self.check_labels(labels, B)
        if self.conditional:
            labels = torch.full((B,), self.null_class, device=tokens.device) if labels is None else labels
            x = x + self.class_emb(labels).unsqueeze(1)  # (B, 1, D): the same shift at every position
        x = self.drop(x)
        maps = []
        for block in self.blocks:
            if return_attention:
                x, weights = block(x, return_attention=True)
                maps.append(weights)  # (B, H, N, N)
            else:
                x = block(x)
        logits = self.head(self.norm(x))  # (B, N, K)
        return (logits, maps) if return_attention else logits
