"""Helpers every check module shares: reading the student's answer and writing messages about it."""

import functools
import inspect
import re
import warnings

import torch

from autograder.core import CheckFailed


def tensor(value, what: str, hint: str = "") -> torch.Tensor:
    """``value`` if it is a tensor, else CheckFailed naming what was expected (and ``hint``: what to do about it)."""
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"expected {what} as a torch.Tensor, got {article(type(value).__name__)}"
                          + (f". {hint}" if hint else ""))
    return value


def article(word: str) -> str:
    """``word`` with its indefinite article: "an int", "a float"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def expect(fn, signature: str):
    """``fn`` when it can be called as ``signature`` says (e.g. "gamma(name)"), else CheckFailed "signature mismatch".

    A method copied from a class (``self`` first), too many or too few parameters, or the expected
    parameters in another order would otherwise raise a bare TypeError or, worse, bind the check's
    inputs to the wrong names and pass by accident. ``name=default`` in ``signature`` is passed by name.
    """
    try:
        theirs = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: its call says the rest
        return fn
    wanted = [p.strip() for p in re.search(r"\((.*)\)", signature).group(1).split(",") if p.strip()]
    positional = [p for p in wanted if "=" not in p]
    by_name = {p.split("=")[0]: None for p in wanted if "=" in p}
    names = [p.name for p in theirs.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    try:
        theirs.bind(*positional, **by_name)
        fits = names[:1] not in (["self"], ["cls"]) and not (sorted(names[:len(positional)]) == sorted(positional)
                                                               and names[:len(positional)] != positional)
    except TypeError:
        fits = False
    if not fits:
        raise CheckFailed(f"signature mismatch: expected {signature}, got {getattr(fn, '__name__', 'a function')}"
                          f"{theirs}. Keep the notebook's signature: the checks and the later sections call it so")
    return fn


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
