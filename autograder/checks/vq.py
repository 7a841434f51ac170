"""Checks for notebook 01 (VQ tokenization): nearest code, straight-through, the VQ losses.

Each check feeds the student's function a tiny fixed input, compares with a value computed
here by brute force, and, when they differ, recognises the usual mistakes by computing
what each mistake would have returned.
"""

import torch

from autograder.checks.common import close, expect, fmt, tensor
from autograder.checks.variants import NEAREST_CODE, STRAIGHT_THROUGH, VQ_LOSS, VQ_LOSS_GRADIENTS
from autograder.core import CheckFailed, applied, computed, diagnose, graded
from maskgit_lab.vq import straight_through as reference_straight_through

# ---------------------------------------------------------------------------------------
# nearest_code
# ---------------------------------------------------------------------------------------

def _nearest_code_case():
    """7 vectors, 5 codes of very different lengths (so a bare dot product picks wrongly)."""
    generator = torch.Generator().manual_seed(1)
    codebook = torch.randn(5, 3, generator=generator) * torch.tensor([[0.3], [0.6], [1.0], [2.0], [4.0]])
    z = torch.randn(7, 3, generator=generator)
    z[4] = codebook[2]  # exactly on a code
    z[5] = 0.8 * codebook[4]  # near the long codes, so every code has a chance
    z[6] = 1.2 * codebook[3]
    squared = torch.tensor([[((row - code) ** 2).sum().item() for code in codebook] for row in z])  # (M, K)
    return z, codebook, squared


@graded(2)
def check_nearest_code(nearest_code) -> str:
    z, codebook, squared = _nearest_code_case()
    M, K = squared.shape
    expected = squared.argmin(dim=1)  # brute force over every (row, code) pair
    got = tensor(expect(nearest_code, "nearest_code(z, codebook)")(z.clone(), codebook.clone()), f"{M} code indices")
    why = diagnose(got, expected, applied(NEAREST_CODE, z, codebook), same=close)
    if why:
        raise CheckFailed(f"expected {expected.tolist()}, got {fmt(got, n=M)}: {why}")
    if got.is_floating_point():
        raise CheckFailed(f"expected integer indices (torch.long) of shape ({M},), got a {got.dtype} tensor of "
                          f"shape {tuple(got.shape)}; indices are whole numbers 0 … K−1")
    if why is None:
        return f"matches brute force on {M} vectors and {K} codes: {expected.tolist()}"
    if got.shape != (M,):
        raise CheckFailed(f"expected shape ({M},) (one code index per row of z), got {tuple(got.shape)}")
    raise CheckFailed(f"expected {expected.tolist()}, got {got.tolist()}: for each row z_i pick the k with the "
                      f"smallest ‖z_i − e_k‖², where e_k is row k of the codebook")


# ---------------------------------------------------------------------------------------
# straight_through
# ---------------------------------------------------------------------------------------

def _straight_through_case():
    generator = torch.Generator().manual_seed(2)
    z_e = torch.randn(2, 3, 2, 2, generator=generator)
    z_q = torch.randn(2, 3, 2, 2, generator=generator)  # stands for rows of a codebook
    return z_e, z_q, torch.randn(z_q.shape, generator=generator)


def _through(fn) -> tuple:
    """What ``fn(z_e, z_q)`` does: (its value, where its gradient goes) as (value, carries a gradient,
    gradient at z_e, gradient at z_q), each in words, or CheckFailed when it is not a tensor of z_q's shape."""
    z_e, z_q, upstream = (t.clone() for t in _straight_through_case())
    z_e.requires_grad_(), z_q.requires_grad_()
    out = tensor(fn(z_e, z_q), "the straight-through output")
    if out.shape != z_q.shape:
        raise CheckFailed(f"expected the shape of z_q, {tuple(z_q.shape)}, got {tuple(out.shape)}")
    value = "z_q" if close(out, z_q) else "z_e" if close(out, z_e) else fmt(out)
    if not out.requires_grad:
        return value, "no gradient", None, None
    out.backward(upstream)
    grad_e = torch.zeros_like(z_e) if z_e.grad is None else z_e.grad
    grad_q = torch.zeros_like(z_q) if z_q.grad is None else z_q.grad
    at_e = "upstream" if close(grad_e, upstream) else "none" if grad_e.abs().max() == 0 else fmt(grad_e)
    return value, "gradient", at_e, "none" if grad_q.abs().max() == 0 else "some"


@graded(2)
def check_straight_through(straight_through) -> str:
    fn = expect(straight_through, "straight_through(z_e, z_q)")
    got, expected = _through(fn), _through(reference_straight_through)
    why = diagnose(got, expected, computed(STRAIGHT_THROUGH, _through))
    if why is None:
        return "forward value is z_q, and the gradient passes to z_e unchanged (and not to z_q)"
    z_e, z_q, upstream = _straight_through_case()
    if got[0] != "z_q":
        raise CheckFailed(f"expected the values of z_q {fmt(z_q)}, got " + (why or f"{got[0]}: the forward value must be "
                                                                                  f"exactly z_q"))
    if why:
        raise CheckFailed(why)
    raise CheckFailed(f"expected the gradient at z_e to equal the gradient arriving at the output {fmt(upstream)} "
                      f"(∂out/∂z_e = identity), got {got[2]}")


# ---------------------------------------------------------------------------------------
# vq_losses
# ---------------------------------------------------------------------------------------

@graded(3)
def check_vq_losses(vq_losses) -> str:
    beta = 0.3
    generator = torch.Generator().manual_seed(3)
    z_e = torch.randn(2, 4, 3, generator=generator).requires_grad_()  # encoder output
    z_q = torch.randn(2, 4, 3, generator=generator).requires_grad_()  # the chosen codebook rows
    loss = expect(vq_losses, "vq_losses(z_e, z_q, beta)")(z_e, z_q, beta)
    if isinstance(loss, (tuple, list)):
        raise CheckFailed("return one scalar, the sum codebook loss + β · commitment loss, not the terms separately")
    loss = tensor(loss, "the loss")
    if loss.numel() != 1:
        raise CheckFailed(f"expected a single number, got a tensor of shape {tuple(loss.shape)}: average the squared "
                          f"differences over every entry (F.mse_loss does this)")
    diff = (z_e - z_q).detach()
    mse, n = diff.pow(2).mean(), diff.numel()
    expected = (1 + beta) * mse
    value = loss.detach().reshape(())
    why = diagnose(value, expected, applied(VQ_LOSS, mse, beta, n), same=close)
    if why:
        raise CheckFailed(f"expected (1 + β)·MSE = {expected.item():.4g} for β = {beta}, got {value.item():.4g} {why}")
    if why == "":
        raise CheckFailed(f"expected codebook + β·commitment = (1 + β)·mean((z_e − z_q)²) = {expected.item():.4g} for "
                          f"β = {beta}, got {value.item():.4g}")
    if not loss.requires_grad:
        raise CheckFailed("the value is right but the loss carries no gradient: detach only one side in each term")
    return _vq_loss_gradients(loss, z_e, z_q, beta)


def _vq_loss_gradients(loss, z_e, z_q, beta: float) -> str:
    """The second half of :func:`check_vq_losses`: the value is right; does each term move only its own side?"""
    diff, n = (z_e - z_q).detach(), z_e.numel()
    loss.reshape(()).backward()
    grad_e = torch.zeros_like(z_e) if z_e.grad is None else z_e.grad
    grad_q = torch.zeros_like(z_q) if z_q.grad is None else z_q.grad
    unit = 2 * diff / n  # the gradient of mean((z_e − z_q)²) with respect to z_e
    both = lambda a, b: close(a[0], b[0]) and close(a[1], b[1])  # noqa: E731 (the gradients at z_e and z_q)
    why = diagnose((grad_e, grad_q), (beta * unit, -unit), applied(VQ_LOSS_GRADIENTS, unit, beta), same=both)
    if why is None:
        return "value and gradients right: the codebook term moves only z_q, β·commitment moves only z_e"
    if why:
        raise CheckFailed(why)
    raise CheckFailed(f"the value is right but the gradients are not: expected ∂L/∂z_e = {fmt(beta * unit)}, got "
                      f"{fmt(grad_e)}; expected ∂L/∂z_q = {fmt(-unit)}, got {fmt(grad_q)}")
