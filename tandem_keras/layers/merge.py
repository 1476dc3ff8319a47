"""TandemAdd: the spiking neuron after a residual addition (method §3, residual neuron)."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence

import keras
import tensorflow as tf

from tandem_keras import _nir_nodes, couplings, kinds, neurons, surrogates
from tandem_keras._checks import check_threshold, check_time_axis, layer_label, mark_spikes
from tandem_keras.modes import ModeMixin
from tandem_keras.synops import layer_specs


@keras.saving.register_keras_serializable(package="tandem_keras")
class TandemAdd(ModeMixin, keras.layers.Layer):
    """Sums current trains and/or spike trains of one shape and fires: ResNet's addition.

    Inputs: a list of ``[batch, T, ...]`` trains: currents of synapse-only layers
    (``TandemConv2D(..., neuron=None)``, e.g. the residual branch's last convolution and a
    1x1 projection shortcut with BN) and spike trains (an identity shortcut), each with a
    scalar weight ``w_i`` (``scales``, default 1; e.g. for threshold normalization after an
    ANN-to-SNN conversion). Forward (``mode="tandem"``), exact, for ``neuron="if"``::

        V(t) = V(t-1) + sum_i w_i x_i(t) - theta s(t-1),   s(t) = [V(t) >= theta],   V(0) = v0 theta

    (any :mod:`tandem_keras.neurons` neuron). Backward, the coupled ANN: the ANN value of a
    train is its time-sum ``X_i = sum_t x_i(t)`` (a count, or a current's ``V_f``)::

        V = sum_i w_i X_i,   a = clip(V / theta + v0, 0, T)   (the surrogate)
        grad_V = (sum_t grad_s(t) / T) a'(V),   grad_x_i(t) = w_i grad_V

    ``trainable_scales=True`` makes the ``w_i`` a trained weight (``scales``, initialized from
    ``scales``): the balance of the shortcut against the branch, which a branch's BN can
    rescale but an identity shortcut cannot, learned by the same gradient,
    ``grad_w_i = sum(grad_V X_i)`` (method §3, residual neuron).

    Other modes: ``"ann"`` (``relu(V / theta)`` on time axes of length 1), ``"quantized"``
    (``clip(floor(V / theta + v0), 0, T)`` front-loaded, straight-through gradient),
    ``"bptt"`` (the recurrence differentiated through time). The sum is formed in float32
    under any dtype policy; the output is a spike train of the compute dtype.

    Example:
      >>> import keras, tandem_keras as tk
      >>> x = keras.Input((4, 8, 8, 16))                       # spikes, T = 4
      >>> y = tk.TandemConv2D(16, 3)(x)
      >>> y = tk.TandemConv2D(16, 3, neuron=None)(y)           # current of the residual branch
      >>> tk.TandemAdd()([y, x]).shape                         # + identity shortcut, then IF
      (None, 4, 8, 8, 16)
    """

    def __init__(self, neuron: Any = "if", threshold: float = 1.0,
                 scales: Optional[Sequence[float]] = None, surrogate: Any = "bounded_relu",
                 mode: str = "tandem", trainable_scales: bool = False, **kwargs: Any) -> None:
        # Inputs are cast in call() (the sum in float32), after their ANN values are read.
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.threshold = check_threshold(threshold, owner)
        try:
            self.neuron = neurons.get(neuron)
            self.surrogate = surrogates.get(surrogate)
        except ValueError as error:
            raise ValueError(f"{owner}: {error}") from None
        if scales is not None:
            scales = list(scales) if not isinstance(scales, (str, bytes)) else [scales]
            if not scales or not all(isinstance(w, numbers.Real) and not isinstance(w, bool)
                                     and math.isfinite(w) for w in scales):
                raise ValueError(f"{owner}: scales must be a list of finite numbers, one per "
                                 f"input, got {scales!r}.")
            scales = [float(w) for w in scales]
        self.scales = scales
        self.trainable_scales = bool(trainable_scales)
        self.scale_weights = None
        self.mode = mode
        self._time_steps: Optional[int] = None

    @property
    def time_steps(self) -> Optional[int]:
        """T, read from the inputs' time axis at build (None before)."""
        return self._time_steps

    def build(self, input_shape) -> None:
        label = layer_label(self)
        if not isinstance(input_shape, (list, tuple)) or not input_shape or not isinstance(
                input_shape[0], (list, tuple)) or len(input_shape) < 2:
            raise ValueError(f"{label} expects a list of at least 2 trains [batch, time, ...], "
                             f"got {input_shape!r}.")
        shapes = [tuple(s) for s in input_shape]
        if any(len(s) < 3 for s in shapes) or len({s[1:] for s in shapes}) != 1:
            raise ValueError(f"{label} expects trains [batch, time, ...] of one shape, got shapes "
                             f"{', '.join(map(str, shapes))}.")
        if self.scales is not None and len(self.scales) != len(shapes):
            raise ValueError(f"{label} has {len(self.scales)} scales for {len(shapes)} inputs.")
        if shapes[0][1] is None and self.mode != "ann":
            raise ValueError(f"{label}: the time axis (axis 1) must have a static length, got "
                             f"shape {shapes[0]}.")
        self._time_steps = shapes[0][1]
        if self.trainable_scales:
            initial = self.scales or [1.0] * len(shapes)
            self.scale_weights = self.add_weight(
                name="scales", shape=(len(shapes),), autocast=False,
                initializer=keras.initializers.Constant(initial))
        self.input_spec = [keras.InputSpec(ndim=len(s), axes={-1: s[-1]}) for s in shapes]

    def __call__(self, *args: Any, **kwargs: Any):
        inputs = args[0] if args else kwargs.get("inputs")
        if self.built and self.mode != "ann" and isinstance(inputs, (list, tuple)):
            for x in inputs:
                if hasattr(x, "shape") and len(x.shape) >= 2:
                    check_time_axis(x.shape, self._time_steps, layer_label(self))
        return super().__call__(*args, **kwargs)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[0])
        return (shape[0], 1 if self.mode == "ann" else shape[1]) + shape[2:]

    def compute_output_spec(self, inputs, training=None):
        return keras.KerasTensor(self.compute_output_shape([tuple(x.shape) for x in inputs]),
                                 dtype=self.compute_dtype)

    @property
    def current_scales(self) -> Optional[list]:
        """The ``w_i`` as floats: the trained ``scales`` weight, else ``scales`` (None: all 1)."""
        if self.scale_weights is not None:
            return [float(w) for w in keras.ops.convert_to_numpy(self.scale_weights)]
        return self.scales

    def _weighted(self, trains: list) -> tf.Tensor:
        """``sum_i w_i x_i`` (the multiplications by 1 left out)."""
        total = None
        for i, x in enumerate(trains):
            if self.scale_weights is not None:
                term = x * tf.cast(self.scale_weights[i], x.dtype)
            else:
                w = 1.0 if self.scales is None else self.scales[i]
                term = x if w == 1.0 else x * w
            total = term if total is None else total + term
        return total

    def call(self, inputs, training=None):
        trains = [tf.cast(x, tf.float32) for x in inputs]
        with tf.name_scope("time_sums"):
            if self.mode in ("tandem", "quantized"):   # the inputs' ANN values (counts, V)
                potential = self._weighted([couplings.ann_value(x, tf.float32) for x in inputs])
            else:
                potential = self._weighted([tf.reduce_sum(x, axis=1) for x in trains])
        if self.mode == "ann":
            return tf.cast(tf.expand_dims(tf.nn.relu(potential / self.threshold), 1), self.compute_dtype)
        time_steps = int(trains[0].shape[1])
        v0 = self.neuron.rounding
        if self.mode == "bptt":
            spikes = self.neuron.fire_bptt(self._weighted(trains), self.threshold)
            return mark_spikes(tf.cast(spikes, self.compute_dtype))
        if self.mode == "quantized":
            count = tf.cast(self.neuron.quantized_count(potential, self.threshold, time_steps),
                            self.compute_dtype)
            spikes = neurons.front_loaded_spikes(count, time_steps)
        else:
            steps = [tf.stop_gradient(x) for x in trains]
            spikes = self.neuron.fire(lambda t: self._weighted([x[:, t] for x in steps]),
                                      time_steps, self.threshold, self.compute_dtype)
            with tf.name_scope("time_sums"):
                count = tf.reduce_sum(spikes, axis=1)
        args = (potential, self.threshold, self.surrogate, v0)
        out = couplings.couple_spikes_to_potential(spikes, *args)
        count = couplings.couple_count_to_potential(count, *args, time_steps=time_steps)
        return mark_spikes(couplings.attach_ann_value(out, count))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(neuron=neurons.serialize(self.neuron), threshold=self.threshold,
                      scales=self.scales, surrogate=surrogates.serialize(self.surrogate),
                      mode=self.mode)
        if self.trainable_scales:
            config["trainable_scales"] = True
        return config


kinds.register_layer(TandemAdd, "spiking_weighted", layer_specs.identity_spec, spike_inputs_only=True,
                     carries=lambda layer, inputs: kinds.spikes_of(layer.neuron), neurons=True,
                     nir=_nir_nodes.tandem_add, convert="keep")
