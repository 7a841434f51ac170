"""The checks of notebook 01: answers a student might write, right (CORRECT) and wrong (WRONG, with the words
the message must hold), which tests/test_checks.py grades; and the cases that need more than that."""

import torch
from torch.nn import functional as F

from autograder.checks.vq import check_nearest_code, check_straight_through, check_vq_losses
from maskgit_lab import vq


def squared_distances(z, codebook):
    return ((z[:, None, :] - codebook[None, :, :]) ** 2).sum(-1)  # (M, K)


CORRECT = [
    (check_nearest_code, vq.nearest_code),
    (check_nearest_code, lambda z, codebook: torch.cdist(z, codebook).argmin(dim=1)),  # plain distance is fine
    (check_nearest_code, lambda z, codebook: squared_distances(z, codebook).argmin(dim=1).int()),
    (check_nearest_code, lambda z, codebook: (codebook.pow(2).sum(1) - 2 * z @ codebook.t()).argmin(dim=1)),
    (check_straight_through, vq.straight_through),
    (check_straight_through, lambda z_e, z_q: z_q.detach() + z_e - z_e.detach()),
    (check_vq_losses, vq.vq_loss),
    (check_vq_losses, lambda z_e, z_q, beta: ((z_e.detach() - z_q) ** 2).mean() + beta * ((z_e - z_q.detach()) ** 2).mean()),
]

WRONG = [
    # nearest_code
    (check_nearest_code, lambda z, c: squared_distances(z, c).argmin(dim=0), "wrong axis"),
    (check_nearest_code, lambda z, c: squared_distances(z, c), "table of distances"),
    (check_nearest_code, lambda z, c: squared_distances(z, c).min(dim=1).values, "smallest distances themselves"),
    (check_nearest_code, lambda z, c: torch.cdist(z, c).min(dim=1).values, "smallest distances themselves"),
    (check_nearest_code, lambda z, c: squared_distances(z, c).argmax(dim=1), "farthest"),
    (check_nearest_code, lambda z, c: (z @ c.t()).argmax(dim=1), "dot product"),
    (check_nearest_code, lambda z, c: (z.pow(2).sum(1, keepdim=True) - 2 * z @ c.t()).argmin(dim=1), "dot product"),
    (check_nearest_code, lambda z, c: squared_distances(z, c).argmin(dim=1, keepdim=True), "expected shape (7,)"),
    (check_nearest_code, lambda z, c: torch.zeros(7, dtype=torch.long), "expected [1, 0, 0, 3, 2, 4, 3]"),
    (check_nearest_code, lambda z, c: squared_distances(z, c).argmin(dim=1).tolist(), "torch.Tensor"),
    # straight_through
    (check_straight_through, lambda z_e, z_q: z_q, "no gradient reaches z_e"),
    (check_straight_through, lambda z_e, z_q: z_q.detach(), "no gradient at all"),
    (check_straight_through, lambda z_e, z_q: z_e + (z_q - z_e), "no gradient reaches z_e"),
    (check_straight_through, lambda z_e, z_q: z_e, "got the values of z_e"),
    (check_straight_through, lambda z_e, z_q: z_e + (z_q - z_e).detach() * 0.5, "forward value must be exactly z_q"),
    (check_straight_through, lambda z_e, z_q: z_q + z_e - z_e.detach(), "also flows into z_q"),
    (check_straight_through, lambda z_e, z_q: 2 * z_e + (z_q - 2 * z_e).detach(), "identity"),
    # vq_losses
    (check_vq_losses, lambda z_e, z_q, b: F.mse_loss(z_e, z_q.detach()) + b * F.mse_loss(z_e.detach(), z_q), "swapped"),
    (check_vq_losses, lambda z_e, z_q, b: b * F.mse_loss(z_q, z_e.detach()) + F.mse_loss(z_e, z_q.detach()), "swapped"),
    (check_vq_losses, lambda z_e, z_q, b: F.mse_loss(z_q, z_e) + b * F.mse_loss(z_e, z_q), "nothing is detached"),
    (check_vq_losses, lambda z_e, z_q, b: F.mse_loss(z_q, z_e.detach()) + F.mse_loss(z_e, z_q.detach()), "β is missing"),
    (check_vq_losses, lambda z_e, z_q, b: F.mse_loss(z_q, z_e.detach()), "one term is missing"),
    (check_vq_losses, lambda z_e, z_q, b: b * F.mse_loss(z_e, z_q.detach()), "codebook term is missing"),
    (check_vq_losses, lambda z_e, z_q, b: b * F.mse_loss(z_q, z_e.detach()) + b * F.mse_loss(z_e, z_q.detach()),
     "not the codebook term too"),
    (check_vq_losses, lambda z_e, z_q, b: F.mse_loss(z_q, z_e.detach(), reduction="sum") * (1 + b), "mean"),
    (check_vq_losses, lambda z_e, z_q, b: F.mse_loss(z_q, z_e.detach()) + b * F.mse_loss(z_e.detach(), z_q),
     "no gradient reaches z_e"),
    (check_vq_losses, lambda z_e, z_q, b: F.mse_loss(z_q.detach(), z_e) + b * F.mse_loss(z_e, z_q.detach()),
     "no gradient reaches z_q"),
    (check_vq_losses, lambda z_e, z_q, b: F.mse_loss(z_q, z_e.detach()) + b * F.mse_loss(z_e, z_q), "detach z_q inside it"),
    (check_vq_losses, lambda z_e, z_q, b: F.mse_loss(z_q, z_e) + b * F.mse_loss(z_e, z_q.detach()), "detach z_e inside it"),
    (check_vq_losses, lambda z_e, z_q, b: (F.mse_loss(z_q, z_e.detach()), b * F.mse_loss(z_e, z_q.detach())), "one scalar"),
    (check_vq_losses, lambda z_e, z_q, b: (1 + b) * F.mse_loss(z_q, z_e, reduction="none"), "single number"),
    (check_vq_losses, lambda z_e, z_q, b: ((1 + b) * F.mse_loss(z_q, z_e)).detach(), "no gradient"),
]


def test_a_crash_in_the_answer_is_reported_not_raised():
    result = check_nearest_code(lambda z, c: z @ c)  # (7, 3) @ (5, 3): shapes do not fit
    assert result.points == 0 and "RuntimeError" in result.message
