"""Signed uniform converters (DAC on the inputs, ADC on each tile's outputs) and their ranges.

A ``bits``-bit signed converter has ``2^(bits-1) - 1`` steps on each side of zero over a full
scale ``r``: ``q(x) = round(clip(x / r, -1, 1) * n) / n * r``, so inside the range the error is
at most half a step, ``r / (2 n)``. ``bits=None`` is an ideal converter (identity). The full
scale comes either from the batch being converted (``"batch"``: its max-abs, per layer for the
DAC and per tile for the ADC) or from a running max-abs kept while the layer is in training
mode and used as-is in eval mode (``"running"``; before any calibration it falls back to the
batch). These are the DAC/ADC models of aihwkit's ``IOParameters`` (inp_res, out_res, bounds),
reduced to what a persistent-chip study needs.
"""

from __future__ import annotations

import torch
from torch import Tensor


def steps(bits: int) -> int:
    """Steps on each side of zero of a signed ``bits``-bit converter."""
    return 2 ** (bits - 1) - 1


def quantise(x: Tensor, full_scale: Tensor, bits: int | None) -> Tensor:
    """``x`` rounded to a signed ``bits``-bit grid over ``[-full_scale, full_scale]``.

    ``full_scale`` broadcasts against ``x``; a zero full scale leaves zeros.
    """
    if bits is None:
        return x
    n = steps(bits)
    safe = torch.where(full_scale > 0, full_scale, torch.ones_like(full_scale))
    return torch.round((x / safe).clamp(-1.0, 1.0) * n) * (safe / n)


def half_step(full_scale: Tensor | float, bits: int | None) -> Tensor | float:
    """The largest rounding error inside the range (0 for an ideal converter)."""
    return 0.0 * full_scale if bits is None else full_scale / (2 * steps(bits))


def choose_range(observed: Tensor, running: Tensor, mode: str, update: bool) -> Tensor:
    """The full scale to use now: the batch's ``observed`` max-abs, or the ``running`` one.

    In ``"running"`` mode ``update`` (training) raises the running range in place to cover
    ``observed``; an uncalibrated (all-zero) running range falls back to the batch.
    """
    if mode == "batch":
        return observed
    if update:
        torch.maximum(running, observed.to(running.dtype), out=running)
    return torch.where(running > 0, running.to(observed.dtype), observed)
