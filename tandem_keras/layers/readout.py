"""Layers that read spike trains: SpikeCount (sum over time) and TimeFlatten."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tandem_keras._checks import keep_tag, layer_label


def _per_step_spec(input_shape) -> keras.InputSpec:
    """Rank and per-step shape fixed at build; any T is fine (the layer sums or keeps it)."""
    return keras.InputSpec(ndim=len(input_shape),
                           axes={i: input_shape[i] for i in range(2, len(input_shape))})


@keras.saving.register_keras_serializable(package="tandem_keras")
class SpikeCount(keras.layers.Layer):
    """Spike train ``[batch, T, ...]`` -> spike count ``c = sum_t s(t)``, ``[batch, ...]``.

    Forward: ``c = sum_t s(t)`` (paper Eq. 5), integer-valued in ``[0, T]``.
    Gradient: ``grad_s(t) = grad_c`` for every t.

    Membrane-potential decoding (method §4) is ``SpikeCount()`` followed by a
    ``keras.layers.Dense`` (its output is the free aggregate potential ``W c + b``);
    spike-count decoding is ``TandemDense(units, batch_norm=False)`` then ``SpikeCount()``.

    Example:
      >>> SpikeCount()(tf.constant([[[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])).numpy().tolist()
      [[2.0, 2.0]]
    """

    def build(self, input_shape) -> None:
        if len(input_shape) < 3:
            raise ValueError(
                f"{layer_label(self)} expects a spike train [batch, time, ...] (rank >= 3), got "
                f"shape {tuple(input_shape)}.")
        self.input_spec = _per_step_spec(input_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[2:])

    def call(self, inputs):
        return tf.reduce_sum(inputs, axis=1)


@keras.saving.register_keras_serializable(package="tandem_keras")
class TimeFlatten(keras.layers.Layer):
    """``[batch, T, d1, d2, ...]`` -> ``[batch, T, d1*d2*...]``, keeping the time axis.

    Sits between convolutional and dense tandem layers (same as
    ``keras.layers.TimeDistributed(keras.layers.Flatten())``). No parameters; the
    gradient is reshaped back.

    Example:
      >>> TimeFlatten()(tf.zeros([2, 4, 3, 3, 8])).shape
      TensorShape([2, 4, 72])
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def build(self, input_shape) -> None:
        if len(input_shape) < 3:
            raise ValueError(f"{layer_label(self)} expects [batch, time, ...] (rank >= 3), got shape "
                             f"{tuple(input_shape)}.")
        if any(d is None for d in input_shape[1:]):
            raise ValueError(f"{layer_label(self)} needs static non-batch dimensions, got shape "
                             f"{tuple(input_shape)}.")
        self.input_spec = _per_step_spec(input_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], int(np.prod(input_shape[2:])))

    def call(self, inputs):
        features = int(np.prod(inputs.shape[2:]))
        flat = tf.reshape(inputs, [-1, inputs.shape[1], features])
        return keep_tag(inputs, flat)  # same values: spikes stay spikes, currents currents
