"""SpikeEncoder: a real-valued tensor to a front-loaded spike train (method §2)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tandem_keras import couplings, kinds, neurons
from tandem_keras._checks import (check_choice, check_finite, check_threshold, check_time_steps,
                                  layer_label, mark_spikes)
from tandem_keras.modes import ModeMixin

ENCODINGS = ("spike", "current")


@keras.saving.register_keras_serializable(package="tandem_keras")
class SpikeEncoder(ModeMixin, keras.layers.Layer):
    """Encodes a real-valued tensor ``v`` as a spike train ``[batch, T, ...]``.

    Forward (``encoding="spike"``, paper Eq. 6-10 and 11)::

        a0 = min(floor(max(v, 0) / theta), T)
        s[t] = 1 if a0 >= t + 1 else 0,   t = 0 .. T-1      (front-loaded, sum_t s[t] = a0)

    that is an IF neuron starting from ``V(0) = v`` without input current. With
    ``neuron=tk.neurons.IF(initial_potential=v0)`` it starts from ``v + v0 theta``:
    ``a0 = clip(floor(v / theta + v0), 0, T)`` (``v0 = 0.5`` rounds).

    Gradient (straight-through of the bounded ReLU): ``d a0 / d v = 1/theta`` where
    ``0 < v + v0 theta < T*theta``, else 0; the spike train is read as a rate, so a
    following layer's count gradient ``grad_c`` gives ``grad_v = grad_c / theta`` there.

    ``encoding="current"`` sends the unquantized ``clip(v/theta, 0, T) / T`` at every
    step: a constant analog current into the first tandem layer (Rueckauer et al.
    2017), whose sum over the window is ``clip(v/theta, 0, T)``.
    In ``mode="ann"`` the output is ``max(v/theta, 0)`` with a time axis of length 1.

    At inference (``training`` false) NaN or inf in ``v`` is refused (``ValueError``
    eagerly, a ``tf.debugging.Assert`` in compiled functions) instead of being encoded as
    no spikes; in training a non-finite input shows up as a non-finite loss.

    Args:
      time_steps: T, the encoding window (integer >= 1).
      threshold: theta (> 0).
      encoding: ``"spike"`` or ``"current"``.
      neuron: ``"if"`` or a ``tk.neurons.IF`` (its ``initial_potential``); the front-loaded
        code is defined for the non-leaky neuron only.
      mode: one of ``tk.MODES``; every mode but ``"ann"`` encodes as above.

    Example:
      >>> enc = SpikeEncoder(time_steps=4)
      >>> enc(tf.constant([[2.5, -1.0, 9.0]]))[0].numpy().T.tolist()
      [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]
    """

    def __init__(self, time_steps: int, threshold: float = 1.0, encoding: str = "spike",
                 mode: str = "tandem", neuron: Any = "if", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.time_steps = check_time_steps(time_steps, owner)
        self.threshold = check_threshold(threshold, owner)
        self.encoding = check_choice(encoding, "encoding", ENCODINGS, owner)
        self.mode = mode
        try:
            self.neuron = neurons.get(neuron)
        except ValueError as error:
            raise ValueError(f"{owner}: {error}") from None
        if type(self.neuron) is not neurons.IF:
            raise ValueError(f"{owner}: the front-loaded spike code is defined for IF neurons "
                             f"(neuron='if' or tk.neurons.IF(...)), got {self.neuron!r}.")

    def build(self, input_shape) -> None:
        if len(input_shape) < 2:
            raise ValueError(
                f"{layer_label(self)} expects a batched tensor [batch, ...] (rank >= 2), "
                f"got shape {tuple(input_shape)}.")

    def compute_output_shape(self, input_shape):
        time_axis = 1 if self.mode == "ann" else self.time_steps
        return (input_shape[0], time_axis) + tuple(input_shape[1:])

    def call(self, inputs, training=None):
        if not training:
            check_finite(inputs, layer_label(self))
        v = tf.cast(inputs, tf.float32)
        if self.mode == "ann":
            return tf.cast(tf.expand_dims(tf.nn.relu(v / self.threshold), 1), self.compute_dtype)
        if self.encoding == "current":
            level = tf.clip_by_value(v / self.threshold, 0.0, float(self.time_steps))
            per_step = tf.expand_dims(level / self.time_steps, 1)
            reps = [1, self.time_steps] + [1] * (v.shape.rank - 1)
            return tf.cast(tf.tile(per_step, reps), self.compute_dtype)
        count = tf.cast(self.neuron.quantized_count(v, self.threshold, self.time_steps),
                        self.compute_dtype)
        spikes = neurons.front_loaded_spikes(count, self.time_steps)
        args = (v, self.threshold, "bounded_relu", self.neuron.rounding)
        out = couplings.couple_spikes_to_potential(spikes, *args)
        count = couplings.couple_count_to_potential(count, *args, time_steps=self.time_steps)
        return mark_spikes(couplings.attach_ann_value(out, count))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(time_steps=self.time_steps, threshold=self.threshold,
                      encoding=self.encoding, mode=self.mode, neuron=neurons.serialize(self.neuron))
        return config


def _carries(layer, inputs) -> kinds.Carry:
    if layer.encoding == "spike":
        return kinds.spikes_of(layer.neuron)
    return kinds.Carry("analog", layer, "encoding='current' sends an analog current, not spikes; "
                                        "set analog_input=True on the layer it feeds", unit=True)


kinds.register_layer(SpikeEncoder, "encoder", carries=_carries, neurons=True, convert="keep")
