"""Surrogate gradients: a Heaviside step forward, a smooth derivative backward.

Kept apart from the neuron dynamics, as SpikingJelly does, so that a neuron takes any of them by
name. A surrogate is the derivative ``g'(x)`` used in place of the step's, at ``x = v - threshold``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch


def atan_grad(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """α/2 / (1 + (π/2·α·x)²): SpikingJelly's ``surrogate.ATan`` (default α = 2)."""
    return (alpha / 2) / (1 + (math.pi / 2 * alpha * x).square())


def sigmoid_grad(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """α·σ(αx)·(1 − σ(αx)): SpikingJelly's ``surrogate.Sigmoid`` (default α = 4)."""
    s = torch.sigmoid(alpha * x)
    return alpha * s * (1 - s)


def rectangle_grad(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """1/α inside |x| < α/2, 0 outside: a straight-through window (default α = 1)."""
    return (x.abs() < alpha / 2).to(x.dtype) / alpha


@dataclass(frozen=True)
class Surrogate:
    name: str
    grad: Callable[[torch.Tensor, float], torch.Tensor]
    alpha: float


SURROGATES = {
    "atan": Surrogate("atan", atan_grad, 2.0),
    "sigmoid": Surrogate("sigmoid", sigmoid_grad, 4.0),
    "rectangle": Surrogate("rectangle", rectangle_grad, 1.0),
}


def get_surrogate(name: str) -> Surrogate:
    try:
        return SURROGATES[name]
    except KeyError:
        raise ValueError(f"unknown surrogate {name!r}; choose from {', '.join(SURROGATES)}") from None


class Heaviside(torch.autograd.Function):
    """Single-step spike function ``H(x)`` with a surrogate derivative (for custom neurons)."""

    @staticmethod
    def forward(ctx, x, surrogate: Surrogate, alpha: float):
        ctx.save_for_backward(x)
        ctx.sg, ctx.alpha = surrogate, alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ctx.sg.grad(x, ctx.alpha), None, None
