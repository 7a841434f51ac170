"""Sharpness terms for the tokenizer that need no downloaded weights.

An MSE-only tokenizer paints blur into the hole, and Inception features (hence FID) punish
blur about as much as an empty hole. Two remedies, both from the VQGAN recipe
(Esser et al. 2021, Eq. 4–7) minus the perceptual loss, which would need pretrained weights:
  - a PatchGAN discriminator (Isola et al. 2017) with hinge losses, whose generator term is
    weighted adaptively: λ = ‖∇_L L_rec‖ / (‖∇_L L_GAN‖ + δ) at the decoder's last layer L;
  - an edge term: L1 between the image gradients (finite differences) of output and target.
"""

import torch
from torch import nn
from torch.nn import functional as F

from maskgit_lab.distributed import mean_over_ranks


class PatchDiscriminator(nn.Module):
    """Scores overlapping patches real (> 0) or fake (< 0): (B, 3, S, S) → (B, 1, S/8, S/8)."""

    def __init__(self, width: int = 64, layers: int = 3):
        super().__init__()
        blocks = [nn.Conv2d(3, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        channels = width
        for _ in range(layers - 1):
            blocks += [
                nn.Conv2d(channels, channels * 2, 4, stride=2, padding=1),
                nn.GroupNorm(8, channels * 2),
                nn.LeakyReLU(0.2),
            ]
            channels *= 2
        blocks += [nn.Conv2d(channels, 1, 3, padding=1)]
        self.net = nn.Sequential(*blocks)

    def forward(self, x):
        return self.net(x)


def hinge_d_loss(real_scores, fake_scores):
    return 0.5 * (F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean())


def hinge_g_loss(fake_scores):
    return -fake_scores.mean()


def adaptive_weight(rec_loss, gan_loss, last_layer: torch.Tensor, max_weight: float = 1e4) -> torch.Tensor:
    """Balance the GAN term against reconstruction by their gradient norms at ``last_layer``.

    Under DDP each rank's gradients are averaged first: the norms are the whole batch's, the same on every rank.
    """
    rec_grad = mean_over_ranks(torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0])
    gan_grad = mean_over_ranks(torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0])
    return (rec_grad.norm() / (gan_grad.norm() + 1e-4)).clamp(0, max_weight).detach()


def image_gradients(x):
    """Horizontal and vertical finite differences of (B, C, S, S) images."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def edge_loss(output, target):
    """L1 between image gradients of output and target: penalises soft edges."""
    (ox, oy), (tx, ty) = image_gradients(output), image_gradients(target)
    return F.l1_loss(ox, tx) + F.l1_loss(oy, ty)
