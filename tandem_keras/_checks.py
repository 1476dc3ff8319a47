"""Argument checks shared by the layers: each raises a ValueError naming the problem."""

from __future__ import annotations

import numbers
from typing import Sequence

MODES = ("tandem", "ann", "quantized", "bptt")


def check_time_steps(time_steps, owner: str) -> int:
    """``time_steps`` must be an integer >= 1 (bools and floats are refused)."""
    if isinstance(time_steps, bool) or not isinstance(time_steps, numbers.Integral):
        raise ValueError(
            f"{owner}: time_steps must be an integer >= 1, got {time_steps!r} "
            f"of type {type(time_steps).__name__}."
        )
    if time_steps < 1:
        raise ValueError(f"{owner}: time_steps must be >= 1, got {time_steps}.")
    return int(time_steps)


def check_threshold(threshold, owner: str) -> float:
    """``threshold`` (theta) must be a finite number > 0."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValueError(f"{owner}: threshold must be a number > 0, got {threshold!r}.")
    if not threshold > 0 or threshold != threshold or threshold == float("inf"):
        raise ValueError(f"{owner}: threshold must be a finite number > 0, got {threshold}.")
    return float(threshold)


def check_choice(value, name: str, choices: Sequence[str], owner: str) -> str:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(
            f"{owner}: unknown {name} {value!r}; expected one of {', '.join(map(repr, choices))}."
        )
    return value


def check_spike_train_shape(shape, expected_rank: int, layout: str, owner: str) -> None:
    """A spike train ``[batch, time, ...]`` of a given rank with a static time axis."""
    shape = tuple(shape)
    if len(shape) != expected_rank:
        raise ValueError(
            f"{owner} expects a spike train of shape {layout} (rank {expected_rank}), got "
            f"shape {shape} of rank {len(shape)}. Tandem layers take the time axis as axis 1: "
            "put a tk.SpikeEncoder before the first tandem layer, and "
            "tk.TimeFlatten() between convolutional and dense tandem layers."
        )
    if shape[1] is None:
        raise ValueError(
            f"{owner}: the time axis (axis 1) of the input must have a static length, got shape {shape}."
        )
    if shape[-1] is None:
        raise ValueError(f"{owner}: the last (feature) axis of the input must be known, got shape {shape}.")


class ModeMixin:
    """A ``mode`` attribute checked against ``MODES`` on every assignment (layers' mixin)."""

    @property
    def mode(self) -> str:
        """``"tandem"``, ``"ann"``, ``"quantized"`` or ``"bptt"`` (see ``tandem_keras.modes``)."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._mode = check_choice(value, "mode", MODES, type(self).__name__)
