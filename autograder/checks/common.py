"""Helpers every check module shares: reading the student's answer and writing messages about it."""

import functools
import warnings

import torch

from autograder.core import CheckFailed


def tensor(value, what: str, hint: str = "") -> torch.Tensor:
    """``value`` if it is a tensor, else CheckFailed naming what was expected (and ``hint``: what to do about it)."""
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"expected {what} as a torch.Tensor, got a {type(value).__name__}" + (f". {hint}" if hint else ""))
    return value


def fmt(values, n: int = 6) -> str:
    """The first ``n`` entries of a tensor (or list), short enough for one line of a message."""
    flat = torch.as_tensor(values).detach().flatten()
    if flat.is_floating_point():
        shown = ", ".join(f"{v:.4g}" for v in flat[:n].tolist())
    else:
        shown = ", ".join(str(v) for v in flat[:n].tolist())
    return f"[{shown}{', …' if flat.numel() > n else ''}]"


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-6) -> bool:
    """Same shape and the same values up to float32 rounding."""
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=1e-4, atol=atol)


def quietly(fn, *args, **kwargs):
    """Call the student's code with warnings silenced: a warning on stderr scores a cell 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def quiet(check):
    """``check`` with every warning it (or the student's code inside it) raises kept off stderr."""

    @functools.wraps(check)
    def run(*args, **kwargs):
        return quietly(check, *args, **kwargs)

    return run
