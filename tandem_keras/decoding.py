"""Spike-count decoding that learns, and its tie rule (method §4).

The paper's spike-count readout is ``TandemDense(K, batch_norm=False)`` + ``SpikeCount``:
integer logits ``c`` in ``[0, T]``. Trained with softmax cross-entropy it has two defects:

* the loss cannot settle: the correct class's probability is capped at
  ``e^T / (e^T + K - 1)`` (0.86 at T=4, K=10), so every example keeps pushing;
* the bounded-ReLU coupling passes no gradient to an output neuron whose ``V_f`` is
  outside ``(0, T theta)``: a correct class that is silent (``V_f <= 0``) is never
  pulled up, and wrong classes are pushed down until they fall silent too, after which
  the example stops teaching the output layer (many images end with all classes silent
  and tied at count 0).

:class:`SpikeCountOutput` is the output layer with options for both, and a decision rule
for ties that uses the output neurons' final membrane potential:

* ``scale`` (optionally ``trainable_scale``): logits ``s * c``; ``s > 0`` leaves the
  predicted class (the count order) unchanged but lets the loss reach 0;
* ``surrogate="straight_through"`` (:class:`tandem_keras.surrogates.StraightThrough`): the
  output layer's coupled
  ANN is ``a = V_f / theta`` (no clip) in the backward pass, so silent and saturated
  output neurons still learn;
* ``tie_break="membrane"``: the logit is ``s * (c + g(V_end))`` with ``V_end = V_f -
  theta c`` the membrane potential each output neuron holds after the window (reset by
  subtraction) and ``g`` strictly inside ``(0, 1)``, so classes are ranked by count and
  equal counts by final potential. A neuromorphic chip can read both.

Example:
    >>> import numpy as np, tensorflow as tf, tandem_keras as tk
    >>> layer = tk.decoding.SpikeCountOutput(3, scale=2.0)
    >>> logits = layer(tf.ones([1, 4, 5]))                 # batch 1, T = 4, 5 inputs
    >>> tuple(logits.shape)
    (1, 3)
    >>> bool(np.all(np.floor(logits.numpy() / 2.0) <= 4))  # count = floor(logit / s)
    True
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

from tandem_keras import _nir_nodes, couplings, kinds
from tandem_keras.layers import TandemDense
from tandem_keras.surrogates import StraightThrough

TIE_BREAKS = ("membrane", "index")

#: ``g(r) = 0.5 + G_SLOPE * r / (theta + |r|)`` lies in ``[0.5 - G_SLOPE, 0.5 + G_SLOPE]``.
G_SLOPE = 0.49


def membrane_tie_break(potential: Any, threshold: float = 1.0):
    """``g(V_end) = 0.5 + 0.49 * V_end / (theta + |V_end|)``, in ``[0.01, 0.99]``.

    Strictly increasing in ``V_end`` (a soft sign, far from float32 saturation for
    potentials of a few thresholds) and strictly inside ``(0, 1)`` even after float32
    rounding, so ``c + g(V_end)`` never reorders different integer counts.

    Example:
      >>> import numpy as np
      >>> [round(float(v), 3) for v in membrane_tie_break(np.array([-1.0, 0.0, 1.0]))]
      [0.255, 0.5, 0.745]
    """
    r = tf.cast(tf.convert_to_tensor(potential), tf.float32)
    return 0.5 + G_SLOPE * r / (float(threshold) + tf.abs(r))


@keras.saving.register_keras_serializable(package="tandem_keras")
class SpikeCountOutput(TandemDense):
    """Spike-count output layer: ``[batch, T, features]`` spikes -> ``[batch, units]`` logits.

    A :class:`TandemDense` without batch norm (IF output neurons, method §4) that returns its
    decoded spike counts::

        c = sum_t s(t)                          (the output neurons' spike counts, [0, T])
        V_end = V_f - theta * c,  V_f = W c_in + b   (potential left after the window)
        logits = s * (c + g(V_end))             tie_break="membrane" (g in [0.01, 0.99])
        logits = s * c                          tie_break="index"  (the paper's, scaled)

    ``s = scale`` (or ``exp(log_scale)``, a trained weight initialized to ``log(scale)``,
    with ``trainable_scale=True``). ``argmax`` of the logits is the class with the most
    spikes, ties broken by the higher final membrane potential (``"membrane"``) or the
    lower class index (``"index"``); the count is ``floor(logits / s)``.

    Gradient (the tandem rule, method §3, through the surrogate of the output neurons)::

        grad_c = s * grad_logits,   grad_V_f = (grad_c / theta) * theta a'(V_f)
        grad_log_scale = sum(grad_logits * logits)          (trainable_scale)

    ``g(V_end)`` carries no gradient. With cross-entropy ``L = -log softmax(logits)_y``,
    ``dL/dc_j = s * (p_j - [j == y])``. ``mode="ann"``: logits ``s * relu(V_f / theta)``.

    Args:
      units: number of classes.
      scale: ``s > 0``, the factor on the counts (1: the paper's logits).
      trainable_scale: learn ``s`` (as ``log s``).
      tie_break: ``"membrane"`` or ``"index"``.
      surrogate: the output neurons' coupled-ANN derivative (default the paper's
        ``"bounded_relu"``; ``StraightThrough()`` for gradient outside ``(0, T theta)``).
      **kwargs: the other arguments of :class:`TandemDense` (``batch_norm`` must be False).

    Example:
      >>> import keras, numpy as np, tandem_keras as tk
      >>> model = keras.Sequential([keras.Input((4, 6)),
      ...     tk.decoding.SpikeCountOutput(3, scale=4.0, surrogate=tk.surrogates.StraightThrough())])
      >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
      >>> tuple(model.predict(np.ones([2, 4, 6]), verbose=0).shape)
      (2, 3)
    """

    def __init__(self, units: int, scale: float = 1.0, trainable_scale: bool = False,
                 tie_break: str = "membrane", batch_norm: bool = False, **kwargs: Any) -> None:
        owner = f"SpikeCountOutput{'' if 'name' not in kwargs else ' ' + repr(kwargs['name'])}"
        if batch_norm:
            raise ValueError(f"{owner}: batch_norm must be False (the output neurons of "
                             "spike-count decoding have no batch norm, method §4).")
        super().__init__(units, batch_norm=False, **kwargs)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (
                math.isfinite(scale) and scale > 0):
            raise ValueError(f"{owner}: scale must be a finite number > 0, got {scale!r}.")
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"{owner}: tie_break must be one of {TIE_BREAKS}, got {tie_break!r}.")
        self.scale = float(scale)
        self.trainable_scale = bool(trainable_scale)
        self.tie_break = tie_break
        self.log_scale = None

    def build(self, input_shape) -> None:
        super().build(input_shape)
        if self.trainable_scale:
            self.log_scale = self.add_weight(
                name="log_scale", shape=(), initializer=keras.initializers.Constant(math.log(self.scale)),
                autocast=False)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def compute_output_spec(self, inputs, training=None):
        # The logits (counts plus the tie-break fraction) are float32 under any dtype policy.
        return keras.KerasTensor(self.compute_output_shape(tuple(inputs.shape)), dtype="float32")

    def current_scale(self) -> tf.Tensor:
        """``s``: ``exp(log_scale)`` if trained, else the fixed ``scale`` (float32 scalar)."""
        if self.log_scale is not None:
            return tf.exp(tf.convert_to_tensor(self.log_scale))
        return tf.constant(self.scale, tf.float32)

    def call(self, inputs, training=None):
        spikes = super().call(inputs, training=training)
        counts = couplings.ann_value(spikes, tf.float32)
        if self.tie_break == "membrane" and self.mode != "ann":
            counts = counts + tf.stop_gradient(membrane_tie_break(
                self.final_potential(inputs, counts), self.threshold))
        return counts * self.current_scale()

    def final_potential(self, inputs, counts) -> tf.Tensor:
        """``V_end = V_f - theta * c`` with ``V_f = W sum_t s_in(t) + b`` (no gradient).

        The IF recurrence with reset by subtraction ends at ``sum_t z(t) - theta sum_t s(t)``
        and ``sum_t z(t) = W c_in + b`` (the per-step bias is ``b / T``).
        """
        kernel = tf.cast(tf.stop_gradient(tf.convert_to_tensor(self.kernel)), tf.float32)
        c_in = tf.stop_gradient(couplings.ann_value(inputs, tf.float32))
        v_f = tf.matmul(c_in, kernel)
        if self.use_bias:
            v_f = v_f + tf.cast(self.bias, tf.float32)
        return v_f - self.threshold * tf.stop_gradient(counts)

    @property
    def decoding(self) -> str:
        """The decoding these logits are (``models``' ``decode=`` names): ``"spike_count"``
        (``tie_break="index"``), ``"spike_count_tie"`` (the final-potential tie rule) or
        ``"spike_count_st"`` (that rule with the straight-through output coupling)."""
        if self.tie_break != "membrane":
            return "spike_count"
        return "spike_count_st" if isinstance(self.surrogate, StraightThrough) else "spike_count_tie"

    @property
    def decoding_description(self) -> str:
        """:attr:`decoding` in words."""
        return {"spike_count": "scaled spike counts",
                "spike_count_tie": "spike counts, ties broken by the final membrane potential",
                "spike_count_st": "spike counts with the straight-through output coupling, ties "
                                  "broken by the final membrane potential"}[self.decoding]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(scale=self.scale, trainable_scale=self.trainable_scale,
                      tie_break=self.tie_break)
        return config


def counts_from_logits(logits: Any, scale: float = 1.0):
    """The spike counts ``floor(logits / s)`` of :class:`SpikeCountOutput` logits.

    Example:
      >>> import numpy as np
      >>> np.asarray(counts_from_logits(np.array([[2.0 * 3.26, 2.0 * 0.5]]), 2.0)).tolist()
      [[3.0, 0.0]]
    """
    return tf.floor(tf.cast(tf.convert_to_tensor(logits), tf.float32) / scale)


def with_membrane_tie_break(model: keras.Model, output_layer: str = "output_neurons") -> keras.Model:
    """A copy of a paper-style spike-count model that breaks ties by final membrane potential.

    ``model`` ends in ``TandemDense(K, batch_norm=False)`` (named ``output_layer``) followed
    by ``SpikeCount`` (``decode="spike_count"`` of ``models``). The copy shares every layer
    up to the output neurons' input and replaces the two by a :class:`SpikeCountOutput`
    with the same weights, threshold, surrogate and mode, so its logits are ``c + g(V_end)``
    and ``argmax`` predicts by count, ties by final potential. The counts are unchanged.

    Raises ``ValueError`` naming ``output_layer`` if the model has no such layer.

    Example:
      >>> import models                                        # doctest: +SKIP
      >>> paper = models.cifarnet(time_steps=4, decode="spike_count")   # doctest: +SKIP
      >>> tied = with_membrane_tie_break(paper)                # doctest: +SKIP
    """
    try:
        neurons = model.get_layer(output_layer)
    except ValueError:
        raise ValueError(f"with_membrane_tie_break: model {model.name!r} has no layer "
                         f"{output_layer!r} (the spike-count output neurons)") from None
    if not isinstance(neurons, TandemDense) or isinstance(neurons, SpikeCountOutput) or neurons.batch_norm:
        raise ValueError(f"with_membrane_tie_break: layer {output_layer!r} must be a TandemDense "
                         f"without batch norm, got {type(neurons).__name__}")
    config = neurons.get_config()
    config.update(name=f"{output_layer}_tie_break", tie_break="membrane", dtype="float32")
    readout = SpikeCountOutput.from_config(config)
    logits = readout(neurons.input)
    readout.set_weights(neurons.get_weights())
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, logits, name=f"{model.name}_tie_break")


# The output neurons' spikes leave the network (fan-out 0): for SynOps a readout fed by
# spikes (its output has no time axis), its MACs and fan-in counted like the paper's output layer.
kinds.register_layer(SpikeCountOutput, role="weighted", time="drop", carries="analog",
                     decoding=lambda layer: layer.decoding, nir=_nir_nodes.spike_count_output)
