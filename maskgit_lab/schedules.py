"""Mask scheduling functions γ(r) (MaskGIT, Sec. 3.3 and Fig. 3 of Chang et al. 2022).

γ maps the progress r ∈ [0, 1] to the fraction of tokens that are masked: γ(0) = 1
(everything masked at the start of decoding), γ(1) = 0 (nothing masked at the end), and
γ never increases. Training samples r ~ U(0, 1) and masks ⌈γ(r)·N⌉-ish tokens; decoding
keeps floor(γ((t+1)/T)·n₀) tokens masked after step t.
"""

import math
from typing import Callable, Union

import torch

Number = Union[float, torch.Tensor]


def _cosine(r):
    return torch.cos(r * math.pi / 2)


def _linear(r):
    return 1 - r


def _square(r):
    return 1 - r**2


def _cubic(r):
    return 1 - r**3


def _sqrt(r):
    return 1 - torch.sqrt(r)


def _arccos(r):
    # Normalised so that γ(0) = 1: arccos(0) = π/2.
    return torch.arccos(r) / (math.pi / 2)


SCHEDULES: dict[str, Callable] = {
    "cosine": _cosine,
    "linear": _linear,
    "square": _square,
    "cubic": _cubic,
    "sqrt": _sqrt,
    "arccos": _arccos,
}


def gamma(name: str) -> Callable[[Number], Number]:
    """Return the schedule γ called ``name``; it accepts floats and tensors alike."""
    if name not in SCHEDULES:
        valid = ", ".join(SCHEDULES)
        raise ValueError(f"unknown mask schedule {name!r}; choose one of: {valid}")
    fn = SCHEDULES[name]

    def schedule(r: Number) -> Number:
        if isinstance(r, torch.Tensor):
            return fn(r.clamp(0.0, 1.0)).clamp(0.0, 1.0)
        value = fn(torch.tensor(float(r), dtype=torch.float64).clamp(0.0, 1.0))
        return float(value.clamp(0.0, 1.0))

    schedule.__name__ = f"gamma_{name}"
    return schedule
