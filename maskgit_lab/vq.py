"""Stage 1: the vector-quantised tokenizer (VQ-VAE, van den Oord et al. 2017, Eq. 3).

An encoder maps a (B, 3, 64, 64) image in [-1, 1] to a (B, C, h, w) grid of vectors z_e;
each vector is replaced by its nearest codebook entry e_k (L2 distance), giving a grid of
indices — the tokens MaskGIT models. The decoder maps the quantised grid back to pixels.

    L = ‖x − D(z_q)‖ + ‖sg[z_e] − e‖² + β·‖z_e − sg[e]‖²

The argmin has no gradient, so the straight-through estimator copies the decoder's
gradient from z_q to z_e. Codes that no input picks for a while are restarted from
random encoder outputs of the current batch, which keeps the whole codebook in use.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from maskgit_lab.distributed import gather_rows


@dataclass
class VQConfig:
    image_size: int = 64
    downsample: int = 8  # f: a token covers an f×f patch, so h = w = image_size / f
    channels: tuple = (32, 64, 128)  # width at each resolution, coarsest last
    res_blocks: int = 2  # residual blocks per resolution
    num_codes: int = 512  # K
    code_dim: int = 64  # C
    beta: float = 0.25  # commitment weight
    encoder: str = "conv"  # "conv": 3×3 convolutions see past the patch; "patch": each token sees its f×f patch only

    @property
    def grid_size(self) -> int:
        return self.image_size // self.downsample

    @property
    def num_tokens(self) -> int:
        return self.grid_size**2


def straight_through(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """Forward value z_q, backward gradient to z_e unchanged (∂out/∂z_e = I)."""
    return z_e + (z_q - z_e).detach()


def vq_loss(z_e: torch.Tensor, z_q: torch.Tensor, beta: float) -> torch.Tensor:
    """Codebook loss + β·commitment loss, ‖sg[z_e] − z_q‖² + β·‖z_e − sg[z_q]‖² (means over all entries).

    Both terms have the same value; the detaches decide where each gradient goes: the codebook
    term moves only the codes z_q, the commitment term only the encoder output z_e.
    """
    codebook_loss = F.mse_loss(z_q, z_e.detach())
    commitment_loss = F.mse_loss(z_e, z_q.detach())
    return codebook_loss + beta * commitment_loss


def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the closest codebook row for each row of z: argmin_k ‖z − e_k‖²."""
    # ‖z − e‖² = ‖z‖² − 2 z·e + ‖e‖², without building the (M, K, C) difference tensor.
    distances = z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.t() + codebook.pow(2).sum(1)  # (M, K)
    return distances.argmin(dim=1)


def perplexity(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """exp(entropy) of the code histogram: K when all codes are used equally, 1 when one is."""
    probs = torch.bincount(indices.flatten(), minlength=num_codes).float()
    probs = probs / probs.sum()
    return torch.exp(-(probs * torch.log(probs + 1e-10)).sum())


# Where a dead code restarts: "random" encodings of the batch (every code ends up in use, even on
# near-identical inputs), or "error": encodings drawn in proportion to their quantisation error.
RESTART_FROM = ("random", "error")


class VectorQuantizer(nn.Module):
    def __init__(self, num_codes: int, code_dim: int, beta: float = 0.25, restart_after: int = 50,
                 restart_from: str = "random"):
        super().__init__()
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.beta = beta
        self.restart_after = restart_after  # training steps a code may go unused before a restart
        self.restart_from = restart_from  # see RESTART_FROM
        self.codebook = nn.Embedding(num_codes, code_dim)
        nn.init.uniform_(self.codebook.weight, -1 / num_codes, 1 / num_codes)
        self.register_buffer("steps_unused", torch.zeros(num_codes, dtype=torch.long))

    def forward(self, z_e: torch.Tensor):
        """z_e (B, C, h, w) → (z_q straight-through, vq loss, indices (B, h·w), stats)."""
        B, C, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, C)  # (B·h·w, C), row-major over the grid
        indices = nearest_code(flat, self.codebook.weight)  # (B·h·w,)
        z_q = self.codebook(indices).view(B, h, w, C).permute(0, 3, 1, 2)  # (B, C, h, w)
        loss = vq_loss(z_e, z_q, self.beta)
        if self.training and torch.is_grad_enabled():
            # under DDP every rank restarts from the whole batch's encodings, so the codebooks stay equal
            self._restart_dead_codes(gather_rows(flat.detach()), gather_rows(indices))
        stats = {
            "perplexity": perplexity(indices, self.num_codes).item(),
            "codes_used": int(torch.unique(indices).numel()),
        }
        return straight_through(z_e, z_q), loss, indices.view(B, h * w), stats

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor, indices: torch.Tensor):
        used = torch.zeros(self.num_codes, dtype=torch.bool, device=flat.device)
        used[indices] = True
        self.steps_unused = torch.where(used, 0, self.steps_unused + 1)
        dead = (self.steps_unused >= self.restart_after).nonzero().squeeze(1)
        if dead.numel():
            if self.restart_from == "random":
                pick = torch.randint(flat.shape[0], (dead.numel(),), device=flat.device)
            else:
                # Encodings far from their code, drawn ∝ squared error (as k-means++ seeds): a dead code
                # goes where the codebook is short, never onto a vector it already fits, such as white.
                error = (flat - self.codebook.weight[indices]).pow(2).sum(1)  # (M,)
                if not error.sum() > 0:
                    return
                pick = torch.multinomial(error, dead.numel(), replacement=True)
            self.codebook.weight.data[dead] = flat[pick]
            self.steps_unused[dead] = 0

    def lookup(self, indices: torch.Tensor, grid_size: int) -> torch.Tensor:
        """Indices (B, h·w) → quantised vectors (B, C, h, w)."""
        B, N = indices.shape
        return self.codebook(indices).view(B, grid_size, grid_size, self.code_dim).permute(0, 3, 1, 2)


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(8, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(8, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x):
        return x + self.body(x)


def _levels(cfg: VQConfig) -> int:
    levels = int(math.log2(cfg.downsample))
    if 2**levels != cfg.downsample or levels != len(cfg.channels):
        raise ValueError(
            f"downsample={cfg.downsample} needs log2(f) = len(channels) = {len(cfg.channels)} levels"
        )
    return levels


class Encoder(nn.Module):
    def __init__(self, cfg: VQConfig):
        super().__init__()
        layers = [nn.Conv2d(3, cfg.channels[0], 3, padding=1)]
        width = cfg.channels[0]
        for level in range(_levels(cfg)):
            out = cfg.channels[level]
            layers += [nn.Conv2d(width, out, 4, stride=2, padding=1)]  # halves h and w
            layers += [ResBlock(out) for _ in range(cfg.res_blocks)]
            width = out
        layers += [nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, cfg.code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class PointwiseBlock(nn.Module):
    """A residual block of 1×1 convolutions: mixes channels, keeps every position to itself."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.SiLU(), nn.Conv2d(channels, channels, 1), nn.SiLU(), nn.Conv2d(channels, channels, 1))

    def forward(self, x):
        return x + self.body(x)


class PatchEncoder(nn.Module):
    """Each token sees its own f×f patch and nothing else: every convolution has kernel = stride.

    So a token depends only on the pixels it covers: a known patch next to a hole encodes to the
    same token as in the whole image, and every pure-white patch encodes to the same vector, hence
    the same code. The transformer then meets at test time the context it was trained on.
    """

    def __init__(self, cfg: VQConfig):
        super().__init__()
        layers, width = [], 3
        for level in range(_levels(cfg)):
            out = cfg.channels[level]
            layers += [nn.Conv2d(width, out, 2, stride=2)]  # halves h and w; never looks across patches
            layers += [PointwiseBlock(out) for _ in range(cfg.res_blocks)]
            width = out
        layers += [nn.SiLU(), nn.Conv2d(width, cfg.code_dim, 1)]  # no GroupNorm: its statistics span the image
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


ENCODERS = {"conv": Encoder, "patch": PatchEncoder}


class Decoder(nn.Module):
    def __init__(self, cfg: VQConfig):
        super().__init__()
        width = cfg.channels[-1]
        layers = [nn.Conv2d(cfg.code_dim, width, 3, padding=1)]
        for level in reversed(range(_levels(cfg))):
            out = cfg.channels[level]
            layers += [ResBlock(width) for _ in range(cfg.res_blocks)]
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, out, 3, padding=1)]
            width = out
        layers += [ResBlock(width), nn.GroupNorm(8, width), nn.SiLU()]
        self.net = nn.Sequential(*layers)
        self.to_rgb = nn.Conv2d(width, 3, 3, padding=1)  # the last layer, used by the GAN weight

    def forward(self, z):
        return self.to_rgb(self.net(z))


class VQTokenizer(nn.Module):
    """Images (B, 3, S, S) in [-1, 1] ⇄ token grids (B, h·w) of codebook indices."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {cfg.encoder!r}; choose one of: {', '.join(ENCODERS)}")
        self.encoder = ENCODERS[cfg.encoder](cfg)
        self.quantizer = VectorQuantizer(cfg.num_codes, cfg.code_dim, cfg.beta)
        self.decoder = Decoder(cfg)

    def check_images(self, images: torch.Tensor):
        S = self.cfg.image_size
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, S, S):
            raise ValueError(
                f"expected images of shape (B, 3, {S}, {S}) in [-1, 1], got {tuple(images.shape)}; "
                f"load them with maskgit_lab.data.load_image"
            )

    def forward(self, images: torch.Tensor):
        """→ (reconstruction, vq loss, indices (B, N), stats)."""
        self.check_images(images)
        z_q, loss, indices, stats = self.quantizer(self.encoder(images))
        return self.decoder(z_q), loss, indices, stats

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        _, _, indices, _ = self.quantizer(self.encoder(images))
        return indices  # (B, N)

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantizer.lookup(indices, self.cfg.grid_size)).clamp(-1, 1)


@torch.no_grad()
def encode_all(tokenizer: VQTokenizer, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Tokens (M, N) of any number of images (M, 3, S, S), ``batch_size`` at a time, on the CPU."""
    tokenizer.eval()
    device = next(tokenizer.parameters()).device
    return torch.cat([tokenizer.encode(chunk.to(device)).cpu() for chunk in images.split(batch_size)])
