"""Layers that read spike trains: SpikeCount (sum over time) and TimeFlatten."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tandem_keras import _nir_nodes, couplings, kinds
from tandem_keras._checks import is_marked_spikes, keep_tag, layer_label


def _per_step_spec(input_shape) -> keras.InputSpec:
    """Rank and per-step shape fixed at build; any T is fine (the layer sums or keeps it)."""
    return keras.InputSpec(ndim=len(input_shape),
                           axes={i: input_shape[i] for i in range(2, len(input_shape))})


@keras.saving.register_keras_serializable(package="tandem_keras")
class SpikeCount(keras.layers.Layer):
    """Spike train ``[batch, T, ...]`` -> spike count ``c = sum_t s(t)``, ``[batch, ...]``.

    Forward: ``c = sum_t s(t)`` (paper Eq. 5), integer-valued in ``[0, T]``.
    Gradient: ``grad_s(t) = grad_c`` for every t (for a library layer's spike train, ``grad_c``
    goes to its coupled ANN directly, see ``tandem_keras.couplings``: the same gradient). Any
    train is summed the same way (a current: its ``V = sum_t z(t)``).

    Membrane-potential decoding (method §4) is ``SpikeCount()`` followed by a
    ``keras.layers.Dense`` (its output is the free aggregate potential ``W c + b``);
    spike-count decoding is ``TandemDense(units, batch_norm=False)`` then ``SpikeCount()``.

    Example:
      >>> SpikeCount()(tf.constant([[[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])).numpy().tolist()
      [[2.0, 2.0]]
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs["autocast"] = False   # the input is cast in call(), after its count is read
        super().__init__(**kwargs)

    def build(self, input_shape) -> None:
        if len(input_shape) < 3:
            raise ValueError(
                f"{layer_label(self)} expects a spike train [batch, time, ...] (rank >= 3), got "
                f"shape {tuple(input_shape)}.")
        self.input_spec = _per_step_spec(input_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[2:])

    def call(self, inputs):
        if is_marked_spikes(inputs):   # the producer's count: the same integers
            return couplings.ann_value(inputs, self.compute_dtype)
        return tf.reduce_sum(tf.cast(inputs, self.compute_dtype), axis=1)


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
        flat = keep_tag(inputs, tf.reshape(inputs, [-1, inputs.shape[1], features]))  # same values
        value = couplings.attached_value(inputs)
        if value is not None:
            flat = couplings.attach_ann_value(flat, tf.reshape(value, [-1, features]))
        return flat


kinds.register_layer(SpikeCount, "transparent", time="drop", nir=_nir_nodes.spike_count,
                     decoding="spike_count", convert="keep")
kinds.register_layer(TimeFlatten, "transparent", nir=_nir_nodes.time_flatten, convert="keep")
