"""Checks shared by the layers, each raising a ValueError (eagerly) or a
``tf.debugging.Assert`` (traced) that names the problem: arguments, the spike-train shape
and time axis, the values at inference, and the tags by which the library's own spike
trains and currents skip the value check."""

from __future__ import annotations

import numbers
from typing import Sequence

import keras
import tensorflow as tf

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


def layer_label(layer) -> str:
    """``"name (ClassName)"``: how error messages name a layer."""
    return f"{layer.name} ({type(layer).__name__})"


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


def spike_train_input_spec(shape) -> keras.InputSpec:
    """The built layer's ``InputSpec``: the rank and the last (channel/feature) axis."""
    shape = tuple(shape)
    return keras.InputSpec(ndim=len(shape), axes={-1: int(shape[-1])})


def check_time_axis(shape, time_steps: int, owner: str) -> None:
    """The input's time axis must have the length T the layer was built with.

    A built layer folds time into the batch with its T: another T would re-split batch and
    time and mix examples. ``None`` (unknown until run time) passes here; see
    :func:`assert_time_axis`.
    """
    shape = tuple(shape)
    if len(shape) >= 2 and shape[1] is not None and int(shape[1]) != time_steps:
        raise ValueError(
            f"{owner} was built for T={time_steps} time steps (axis 1) and got an input with "
            f"T={shape[1]} (shape {shape}). T is fixed when a layer is built: build a new model "
            f"for another T (e.g. with time_steps={shape[1]}).")


def assert_time_axis(inputs: tf.Tensor, time_steps: int, owner: str):
    """Run-time form of :func:`check_time_axis` when the time axis is not static."""
    return tf.debugging.assert_equal(
        tf.shape(inputs)[1], time_steps,
        message=f"{owner} was built for T={time_steps} time steps (axis 1); the input has another T")


_TRAIN_TAG = "_tandem_keras_train"


def _tag(tensor, kind: str):
    try:
        setattr(tensor, _TRAIN_TAG, kind)
    except (AttributeError, TypeError):
        pass
    return tensor


def mark_spikes(tensor):
    """Tags ``tensor`` as a spike train made by a spiking layer or the spike encoder.

    Such a tensor holds 0/1 by construction, so the next layer's value check is skipped
    (it would cost one pass over the whole ``[batch, T, ...]`` train per layer, about 5%
    of a compiled inference step of CIFARNet). A tensor made by any other op (a Keras
    layer between two tandem layers) carries no tag and is checked. Tensors that take no
    attributes stay untagged (checked). Returns ``tensor``.
    """
    return _tag(tensor, "spikes")


def mark_current(tensor):
    """Tags ``tensor`` as an exact input current made by the library (an average-pooled
    spike train, a synapse-only layer's current): a weighted tandem layer integrates it
    exactly, so its values are not checked. Returns ``tensor``."""
    return _tag(tensor, "current")


def train_kind(tensor):
    """``"spikes"``, ``"current"`` or None (untagged), as set by :func:`mark_spikes` /
    :func:`mark_current`."""
    return getattr(tensor, _TRAIN_TAG, None)


def is_marked_spikes(tensor) -> bool:
    """Whether :func:`mark_spikes` tagged ``tensor``."""
    return train_kind(tensor) == "spikes"


def keep_tag(source, tensor):
    """``tensor`` with the tag of ``source`` (a reshape or a copy of the same values)."""
    kind = train_kind(source)
    return _tag(tensor, kind) if kind else tensor


def _eager_value_description(x: tf.Tensor, bad: tf.Tensor, what: str) -> str:
    finite = tf.math.is_finite(x)
    example = tf.boolean_mask(x, bad)[0]
    low = tf.reduce_min(tf.boolean_mask(x, finite)) if tf.reduce_any(finite) else float("nan")
    high = tf.reduce_max(tf.boolean_mask(x, finite)) if tf.reduce_any(finite) else float("nan")
    return (f"{int(tf.reduce_sum(tf.cast(bad, tf.int64)))} of {int(tf.size(x))} values are {what} "
            f"(e.g. {float(example):g}; finite values in [{float(low):g}, {float(high):g}], "
            f"{int(tf.reduce_sum(tf.cast(tf.logical_not(finite), tf.int64)))} NaN/inf)")


_SPIKE_HINT = ("Encode real-valued inputs with tk.SpikeEncoder first; sum spike trains with "
               "tk.TandemAdd and average them with tk.AveragePooling2D (an exact input current), "
               "or set analog_input=True to accept values in [0, 1]")
_ANALOG_HINT = "SpikeEncoder(encoding='current') sends clip(v/theta, 0, T)/T"


def check_spike_values(inputs: tf.Tensor, owner: str, analog: bool = False,
                       accept_currents: bool = True):
    """Refuses inference inputs of a spiking layer that are not spikes.

    Spikes are exactly 0 or 1 (NaN and inf are not); with ``analog=True`` (the layer after
    ``SpikeEncoder(encoding="current")``) any finite value in ``[0, 1]`` is accepted.
    Eagerly: a ``ValueError`` naming the layer and the offending values. Inside a traced
    function: a ``tf.debugging.Assert`` (one fused compare-and-reduce over the input; an
    ``InvalidArgumentError`` naming the layer when it fails). XLA drops asserts. Inputs
    tagged by :func:`mark_spikes` are not checked, nor, with ``accept_currents``, those
    tagged by :func:`mark_current` (exact currents of the library's pooling and
    synapse-only layers).
    """
    kind = train_kind(inputs)
    if kind == "spikes" or (kind == "current" and accept_currents):
        return None
    x = tf.convert_to_tensor(inputs)
    if not (x.dtype.is_floating or x.dtype.is_integer):
        return None
    if analog:
        ok = tf.reduce_all(tf.logical_and(x >= 0, x <= 1))  # NaN compares false
        expected, what, hint = ("finite values in [0, 1] (an analog current)", "outside [0, 1] or "
                                "NaN/inf", _ANALOG_HINT)
    else:
        ok = tf.reduce_all(tf.logical_or(tf.equal(x, 0), tf.equal(x, 1)))
        expected, what, hint = "a spike train (values 0/1)", "not 0/1", _SPIKE_HINT
    if tf.executing_eagerly():
        if not bool(ok):
            values = tf.cast(x, tf.float32)
            if analog:
                bad = tf.logical_not(tf.logical_and(values >= 0, values <= 1))
            else:
                bad = tf.logical_not(tf.logical_or(tf.equal(values, 0.0), tf.equal(values, 1.0)))
            detail = _eager_value_description(values, bad, what)
            raise ValueError(f"{owner} expects {expected} at inference; {detail}. {hint}.")
        return None
    return tf.debugging.Assert(ok, [f"{owner} expects {expected} at inference; the input is not. {hint}."])


def check_finite(inputs: tf.Tensor, owner: str):
    """Refuses NaN/inf in an analog input (the encoder would turn them into no spikes).

    Eagerly a ``ValueError``; inside a traced function a ``tf.debugging.Assert``.
    """
    x = tf.convert_to_tensor(inputs)
    if not x.dtype.is_floating:
        return None
    ok = tf.reduce_all(tf.math.is_finite(x))
    message = f"{owner} was fed NaN or inf values; only finite inputs can be encoded as spikes"
    if tf.executing_eagerly():
        if not bool(ok):
            count = int(tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(x)), tf.int64)))
            raise ValueError(f"{message} ({count} of {int(tf.size(x))} values).")
        return None
    return tf.debugging.Assert(ok, [message + "."])
