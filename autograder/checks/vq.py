"""Checks for notebook 01 (VQ tokenization): nearest code, straight-through, the VQ losses.

Each check feeds the student's function a tiny fixed input, compares with a value computed
here by brute force, and, when they differ, recognises the usual mistakes by computing
what each mistake would have returned.
"""

import torch

from autograder.checks.common import close, fmt, tensor
from autograder.core import CheckFailed, diagnose, graded

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
    got = tensor(nearest_code(z.clone(), codebook.clone()), f"{M} code indices")
    if got.is_floating_point():
        if got.shape == (M, K):
            raise CheckFailed(f"you returned the ({M}, {K}) table of distances; the answer is, for each row of z, "
                              f"*which* code is nearest: take the argmin over the codebook axis (dim=1)")
        if got.shape == (M,) and (close(got, squared.min(dim=1).values) or close(got, squared.min(dim=1).values.sqrt())):
            raise CheckFailed("you returned the smallest distances themselves, not the indices of the nearest codes: "
                              "use .argmin(dim=1) instead of .min(dim=1).values")
        raise CheckFailed(f"expected integer indices (torch.long) of shape ({M},), got a {got.dtype} tensor of "
                          f"shape {tuple(got.shape)}; indices are whole numbers 0 … K−1")
    if got.shape == (K,):
        raise CheckFailed(f"expected one index per row of z, shape ({M},), but got shape ({K},), one per code: the "
                          f"argmin ran over the wrong axis. In the (M, K) distance table take argmin over dim=1, the codes")
    if got.shape != (M,):
        raise CheckFailed(f"expected shape ({M},) (one code index per row of z), got {tuple(got.shape)}")
    got = got.long()
    dot_product = ("the dot product z·e_k alone is not the distance. ‖z − e_k‖² = ‖z‖² − 2 z·e_k + ‖e_k‖², and ‖e_k‖² "
                   "differs from code to code, so keep that term (‖z‖² may be dropped: it is the same for every code)")
    why = diagnose(got, expected, [
        (squared.argmax(dim=1), ", the *farthest* code for every row: use argmin of the distances, not argmax"),
        ((z @ codebook.t()).argmax(dim=1), ": " + dot_product),
        ((-2 * z @ codebook.t()).argmin(dim=1), ": " + dot_product),
    ], same=torch.equal)
    if why is None:
        return f"matches brute force on {M} vectors and {K} codes: {expected.tolist()}"
    raise CheckFailed(f"expected {expected.tolist()}, got {got.tolist()}" + (why or ": for each row z_i pick the k with the "
                      "smallest ‖z_i − e_k‖², where e_k is row k of the codebook"))


# ---------------------------------------------------------------------------------------
# straight_through
# ---------------------------------------------------------------------------------------

@graded(2)
def check_straight_through(straight_through) -> str:
    generator = torch.Generator().manual_seed(2)
    z_e = torch.randn(2, 3, 2, 2, generator=generator).requires_grad_()
    z_q = torch.randn(2, 3, 2, 2, generator=generator).requires_grad_()  # stands for rows of a codebook
    out = tensor(straight_through(z_e, z_q), "the straight-through output")
    if out.shape != z_q.shape:
        raise CheckFailed(f"expected the shape of z_q, {tuple(z_q.shape)}, got {tuple(out.shape)}")
    why = diagnose(out, z_q, [(z_e, f"the values of z_e {fmt(z_e)}: in the forward pass the decoder must see the "
                                    f"quantised vectors z_q; only the gradient comes from z_e")], same=close)
    if why is not None:
        raise CheckFailed(f"expected the values of z_q {fmt(z_q)}, got "
                          + (why or f"{fmt(out)}: the forward value must be exactly z_q"))
    if not out.requires_grad:
        raise CheckFailed("the output carries no gradient at all, so no gradient reaches z_e and the encoder never "
                          "learns: detach only the difference, z_e + (z_q − z_e).detach()")
    upstream = torch.randn(out.shape, generator=generator)
    out.backward(upstream)
    grad_e = torch.zeros_like(z_e) if z_e.grad is None else z_e.grad
    grad_q = torch.zeros_like(z_q) if z_q.grad is None else z_q.grad
    if grad_e.abs().max() == 0:
        raise CheckFailed("the value is right, but no gradient reaches z_e, so the encoder never learns. Returning z_q "
                          "stops the gradient at the codebook, and z_e + (z_q − z_e) without .detach() cancels it; "
                          "write z_e + (z_q − z_e).detach()")
    if not close(grad_e, upstream):
        raise CheckFailed(f"expected the gradient at z_e to equal the gradient arriving at the output {fmt(upstream)} "
                          f"(∂out/∂z_e = identity), got {fmt(grad_e)}")
    if grad_q.abs().max() > 0:
        raise CheckFailed("the decoder's gradient also flows into z_q, i.e. into the codebook; the codes should move "
                          "only through the codebook loss. Put z_q inside the detached part: z_e + (z_q − z_e).detach()")
    return "forward value is z_q, and the gradient passes to z_e unchanged (and not to z_q)"


# ---------------------------------------------------------------------------------------
# vq_losses
# ---------------------------------------------------------------------------------------

@graded(3)
def check_vq_losses(vq_losses) -> str:
    beta = 0.3
    generator = torch.Generator().manual_seed(3)
    z_e = torch.randn(2, 4, 3, generator=generator).requires_grad_()  # encoder output
    z_q = torch.randn(2, 4, 3, generator=generator).requires_grad_()  # the chosen codebook rows
    loss = vq_losses(z_e, z_q, beta)
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
    why = diagnose(value, expected, [
        (mse, "(1 × MSE): one term is missing: the total is the codebook term plus β times the commitment term, "
              "and both terms have the same value ‖z_e − z_q‖² (they differ only in which side is detached)"),
        (beta * mse, "(β × MSE): the codebook term is missing: only β · commitment is there"),
        (2 * mse, "(2 × MSE): β is missing: the commitment term must be multiplied by β"),
        (2 * beta * mse, "(2β × MSE): β should weight only the commitment term, not the codebook term too"),
        ((1 + beta) * mse * n, "(a sum): you summed the squared differences; take their mean (F.mse_loss does)"),
    ], same=close)
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
    why = diagnose((grad_e, grad_q), (beta * unit, -unit), [
        (((1 + beta) * unit, -(1 + beta) * unit),
         "the value is right, but nothing is detached: the codebook term also pushes the encoder and the commitment "
         "term also moves the codebook. Use ‖sg[z_e] − z_q‖² + β‖z_e − sg[z_q]‖² (sg = .detach())"),
        ((unit, -beta * unit),
         "the value is right, but the detaches are swapped (or β weights the wrong term): the gradient reaching z_e "
         "has weight 1 and the one reaching z_q weight β. The codebook term ‖sg[z_e] − z_q‖² must move only z_q "
         "(detach z_e), and β‖z_e − sg[z_q]‖² only z_e (detach z_q)"),
    ], same=both)
    if why is None:
        return "value and gradients right: the codebook term moves only z_q, β·commitment moves only z_e"
    if why:
        raise CheckFailed(why)
    if grad_e.abs().max() == 0:
        raise CheckFailed("no gradient reaches z_e: the commitment term must pull the encoder output towards its code, "
                          "so inside it detach z_q, not z_e")
    if grad_q.abs().max() == 0:
        raise CheckFailed("no gradient reaches z_q: the codebook term must pull the code towards the encoder output, "
                          "so inside it detach z_e, not z_q")
    if close(grad_e, beta * unit):
        raise CheckFailed("z_e gets the right gradient, but z_q's is off: the commitment term also moves the codebook; "
                          "detach z_q inside it")
    if close(grad_q, -unit):
        raise CheckFailed("z_q gets the right gradient, but z_e's is off: the codebook term also pushes the encoder; "
                          "detach z_e inside it")
    raise CheckFailed(f"the value is right but the gradients are not: expected ∂L/∂z_e = {fmt(beta * unit)}, got "
                      f"{fmt(grad_e)}; expected ∂L/∂z_q = {fmt(-unit)}, got {fmt(grad_q)}")
