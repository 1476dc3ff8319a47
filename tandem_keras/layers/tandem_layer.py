"""TandemLayer: a Keras linear layer made a tandem layer, spike trains in and out (method §3).

A tandem layer is a Keras layer with :class:`TandemLayer` mixed in, larq's pattern::

    class TandemConv2D(TandemLayer, keras.layers.Conv2D): ...

Keras's class checks the arguments, makes the kernel and the bias, computes the output shape
and applies the map (``convolution_op``, a matrix product, ...); the mixin adds the time
axis (time folded into the batch), the neuron, the fused batch normalization
(``layers/_folded_bn.py``), the modes and the coupling. The coupled ANN's gradient is the
map's own vector-Jacobian product at the counts (``couplings.shared_linear``), so a new linear
map needs no backward. The layers themselves are in ``layers/linear.py``.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import keras
import tensorflow as tf

from tandem_keras import _nir_nodes, couplings, kinds, neurons, surrogates
from tandem_keras._checks import (assert_time_axis, check_spike_train_shape, check_spike_values,
                                  check_threshold, check_time_axis, layer_label, mark_current,
                                  mark_spikes, spike_train_input_spec)
from tandem_keras.layers._folded_bn import BN_INITIALIZERS, BN_REGULARIZERS, FoldedBatchNorm
from tandem_keras.modes import ModeMixin


class TandemLayer(FoldedBatchNorm, ModeMixin, keras.layers.Layer):
    """Base of the tandem layers: an IF SNN layer forward, its coupled ANN backward.

    Mixed into a Keras linear layer (``class TandemDense(TandemLayer, keras.layers.Dense)``):
    the layer takes that class's arguments (positional ones included) and the tandem ones
    below, keyword only. Forward (``mode="tandem"``; method §3, paper Eq. 1-3), with BN
    folded into the weights (``g = gamma / sqrt(var + eps)``, ``W' = W g``,
    ``b' = (b - mu) g + beta``; batch statistics in training, moving statistics in
    inference), for ``neuron="if"``::

        z(t) = W' * s_in(t) + b' / T
        V(t) = V(t-1) + z(t) - theta * s(t-1),   s(t) = [V(t) >= theta],   V(0) = v0 theta

    (``neuron="lif"`` leaks, see :mod:`tandem_keras.neurons`; ``v0`` is the neuron's
    ``initial_potential``). ``neuron=None`` makes the layer synapse-only: it outputs the
    float32 current train ``z(t)`` itself (method §3), e.g. into :class:`TandemAdd`.

    Backward (the tandem rule, paper Eq. 4-5, 11), from the coupled ANN only::

        c_in = sum_t s_in(t),  V_f = BN(W * c_in + b),  a = clip(V_f / theta + v0, 0, T)
        grad_a = sum_t grad_s(t) / T,  grad_s_in(t) = grad_c_in

    (``surrogate`` sets ``a``: ``"bounded_relu"`` above, ``"relu"`` without the upper
    bound, or any :class:`tandem_keras.surrogates.Surrogate``; synapse-only: ``V_f`` is the
    current's time-sum and ``grad_V_f = sum_t grad_z(t) / T``.)

    Other modes: ``"quantized"`` (Eq. 11 forward as front-loaded spikes,
    straight-through gradient), ``"ann"`` (ReLU ANN; the output's time axis has
    length 1 and holds the activation) and ``"bptt"`` (the SNN differentiated through
    time with a boxcar surrogate, a baseline).

    Tandem arguments: ``threshold`` (theta), ``neuron``, ``batch_norm``, ``surrogate``,
    ``mode``, ``momentum``, ``epsilon``, ``gamma_*``/``beta_*``/``moving_*`` initializers and
    regularizers (Keras's ``BatchNormalization`` names), ``analog_input``. The convolutions
    default to ``padding="same"`` and take ``data_format="channels_last"`` only; the
    activation is the neuron (``activation=None``).

    The BN moving statistics use ``momentum=0.9`` by default (Tensorpack's and
    PyTorch's default, which the authors trained with), not Keras's 0.99: the SNN
    thresholds its potentials, so stale moving statistics after short training cost
    more accuracy than in an ANN.

    Input checks: the rank, the last axis and T are fixed at build (``input_spec`` and a
    check naming the expected and received T; ``mode="ann"`` accepts any time axis, it is
    summed). When the layer is called in a model, what its input carries is read from the
    graph (:mod:`tandem_keras.kinds`): values known not to be spikes or an exact current (a
    Keras ``Add``, ``BatchNormalization`` or average pooling of spike trains on the way)
    are refused then, naming the layer that made them; spikes and exact currents (also
    joined by ``Concatenate`` or reshaped) are accepted. Otherwise (an input of unknown
    origin, an eager call), at inference (``training`` false, every mode but ``"ann"``)
    the input must be spikes, exactly 0/1 and finite (``ValueError`` eagerly, a
    ``tf.debugging.Assert`` in compiled functions). ``analog_input=True`` accepts finite
    values in ``[0, 1]`` instead: set it on the layer after
    ``SpikeEncoder(encoding="current")``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__bases__:   # the tandem version of a Keras layer, for tk.convert
            if issubclass(base, keras.layers.Layer) and not issubclass(base, TandemLayer):
                kinds.register_tandem_version(base, cls)

    def __init__(
        self,
        *args: Any,
        threshold: float = 1.0,
        neuron: Any = "if",
        batch_norm: bool = True,
        surrogate: Any = "bounded_relu",
        mode: str = "tandem",
        momentum: float = 0.9,
        epsilon: float = 1e-3,
        gamma_initializer: Any = "ones",
        beta_initializer: Any = "zeros",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        gamma_regularizer: Any = None,
        beta_regularizer: Any = None,
        analog_input: bool = False,
        **kwargs: Any,
    ) -> None:
        keras_init = inspect.signature(super().__init__)
        given = keras_init.bind_partial(*args, **kwargs).arguments
        for name, default in (("padding", "same"), ("data_format", "channels_last")):
            if name in keras_init.parameters and name not in given:
                kwargs[name] = default
        super().__init__(*args, **kwargs)
        owner = type(self).__name__
        if self.activation not in (None, keras.activations.linear):
            raise ValueError(
                f"{owner}: activation={kwargs.get('activation')!r} is not supported; the activation "
                "of a tandem layer is its integrate-and-fire neuron (leave activation=None).")
        if getattr(self, "data_format", "channels_last") != "channels_last":
            raise ValueError(f"{owner}: only data_format='channels_last' is supported, got "
                             f"{self.data_format!r} (the time axis is axis 1).")
        if getattr(self, "groups", 1) != 1:
            raise ValueError(f"{owner}: only groups=1 is supported, got groups={self.groups!r}.")
        self.threshold = check_threshold(threshold, owner)
        try:
            self.neuron = None if neuron is None else neurons.get(neuron)
        except ValueError as error:
            raise ValueError(f"{owner}: {error}") from None
        self.batch_norm = bool(batch_norm)
        try:
            self.surrogate = surrogates.get(surrogate)
        except ValueError as error:
            raise ValueError(f"{owner}: {error}") from None
        self.mode = mode
        self.analog_input = bool(analog_input)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"{owner}: momentum must be in [0, 1), got {momentum}.")
        if not epsilon > 0:
            raise ValueError(f"{owner}: epsilon must be > 0, got {epsilon}.")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        for key in BN_INITIALIZERS:
            setattr(self, key, keras.initializers.get(locals()[key]))
        for key in BN_REGULARIZERS:
            setattr(self, key, keras.regularizers.get(locals()[key]))
        self._time_steps: Optional[int] = None
        self._output_channels: Optional[int] = None
        self._input_proven: Optional[bool] = None   # None until called on a symbolic input

    # ----------------------------------------------------------------- properties
    @property
    def time_steps(self) -> Optional[int]:
        """T, read from the time axis of the input at build (None before)."""
        return self._time_steps

    @property
    def _step_rank(self) -> int:
        """The rank of one step ``[batch, ...]``: the Keras layer's own input rank."""
        return getattr(self, "rank", 0) + 2 if hasattr(self, "rank") else 2

    def _layout(self) -> str:
        axes = {1: "steps", 2: "height, width", 3: "depth, height, width"}.get(getattr(self, "rank", 0))
        return f"[batch, time, {axes}, channels]" if axes else "[batch, time, features]"

    def _linear(self, x, *kernels):
        """The map of one step (no bias): Keras's own convolution op."""
        return self.convolution_op(x, *kernels)

    # ------------------------------------------------------------------ building
    def add_weight(self, *args: Any, **kwargs: Any):
        # The bias is added in float32 to the float32 potentials: not cast to a bfloat16
        # compute dtype (Keras's base class makes it with its other weights).
        if kwargs.get("name") == "bias":
            kwargs["autocast"] = False
        return super().add_weight(*args, **kwargs)

    def build(self, input_shape) -> None:
        input_shape = tuple(input_shape)
        check_spike_train_shape(input_shape, self._step_rank + 1, self._layout(), layer_label(self))
        self._time_steps = int(input_shape[1])
        step = (None,) + input_shape[2:]
        super().build(step)
        self.input_spec = spike_train_input_spec(input_shape)
        self._output_channels = int(super().compute_output_shape(step)[-1])
        self._build_batch_norm(self._output_channels)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != self._step_rank + 1:   # one step (Keras's build validates it)
            return super().compute_output_shape(input_shape)
        step = super().compute_output_shape((input_shape[0],) + input_shape[2:])
        time_axis = 1 if self.mode == "ann" else input_shape[1]
        return (step[0], time_axis) + tuple(step[1:])

    def compute_output_spec(self, inputs, training=None):
        # Currents (neuron=None) are float32 under any dtype policy; spikes the compute dtype.
        return keras.KerasTensor(self.compute_output_shape(tuple(inputs.shape)),
                                 dtype="float32" if self.neuron is None else self.compute_dtype)

    def save_own_variables(self, store) -> None:
        # Every weight, in creation order (kernel(s), bias, gamma, beta, moving statistics).
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store) -> None:
        keras.layers.Layer.load_own_variables(self, store)

    # ------------------------------------------------------------------ forward
    def __call__(self, *args: Any, **kwargs: Any):
        # Before Keras's own InputSpec check, for a message that says "time steps" (eager,
        # symbolic and traced calls all pass here; call() is not run on symbolic inputs).
        inputs = args[0] if args else kwargs.get("inputs")
        if (self.built and self.mode != "ann" and hasattr(inputs, "shape")
                and len(inputs.shape) == self._step_rank + 1):
            check_time_axis(inputs.shape, self._time_steps, layer_label(self))
        if self.mode != "ann" and keras.backend.is_keras_tensor(inputs):
            proven = kinds.check_input(inputs, layer_label(self), analog=self.analog_input) is not None
            # Every symbolic call must prove its input for the value check to be left out.
            self._input_proven = proven and self._input_proven is not False
        return super().__call__(*args, **kwargs)

    def call(self, inputs, training=None):
        if self.mode != "ann":
            if inputs.shape[1] is None:
                assert_time_axis(inputs, self._time_steps, layer_label(self))
            # In training, inverted dropout between layers scales spikes to 1/(1-rate): only
            # inference inputs are checked; the model's graph may have proven them already.
            if not training and not self._input_proven:
                check_spike_values(inputs, layer_label(self), analog=self.analog_input)
        training = bool(training) and self.trainable
        # Tensors, read inside Keras's autocast scope (compute dtype): the custom gradients
        # capture them, and a captured variable would be re-read outside that scope.
        kernels = [tf.convert_to_tensor(k) for k in self._kernels()]
        dtype = kernels[0].dtype
        # The coupled ANN reads c_in, the input's ANN value (attached by a library layer).
        counts = couplings.ann_value(inputs, dtype) if self.mode != "bptt" else None
        inputs = tf.cast(inputs, dtype)
        if self.mode == "tandem":
            return self._call_tandem(inputs, counts, kernels, training)
        if self.mode == "bptt":
            return self._call_bptt(inputs, kernels, training)
        v_f, _, _ = self._normalize(self._linear(counts, *kernels), training)
        if self.mode == "ann":
            if self.neuron is None:  # the current's ANN value, its time-sum V_f
                return tf.expand_dims(v_f, 1)
            return tf.cast(tf.expand_dims(tf.nn.relu(v_f / self.threshold), 1), self.compute_dtype)
        # quantized: Eq. 11 forward (shifted by the initial potential) as a front-loaded
        # spike train, straight-through gradient; synapse-only: V_f spread over the T steps.
        if self.neuron is None:
            spread = tf.expand_dims(v_f / float(self._time_steps), 1)
            current = tf.repeat(spread, self._time_steps, axis=1)
            return mark_current(couplings.attach_ann_value(current, v_f))
        activation = tf.cast(self.neuron.quantized_count(v_f, self.threshold, self._time_steps),
                             self.compute_dtype)
        spikes = neurons.front_loaded_spikes(activation, self._time_steps)
        return self._coupled_spikes(spikes, activation, v_f)

    def _coupled_spikes(self, spikes, count, v_f):
        """The spike train coupled to ``V_f`` (method §3), with its count as ANN value."""
        args = (v_f, self.threshold, self.surrogate, self.neuron.rounding)
        out = couplings.couple_spikes_to_potential(spikes, *args)
        count = couplings.couple_count_to_potential(count, *args, time_steps=self._time_steps)
        return mark_spikes(couplings.attach_ann_value(out, count))

    def _per_step_products(self, inputs, kernels):
        """``W * s(t)`` for every t with one linear op over time folded into batch."""
        return couplings.per_step(lambda x: self._linear(x, *kernels), inputs, self._time_steps)

    def _snn_current(self, products, scale, folded_bias):
        """``z(t) = W' s(t) + b'/T`` in float32 from the unscaled products ``W s(t)``."""
        current = tf.cast(products, tf.float32)
        if scale is not None:
            current = current * scale
        return current + folded_bias / float(self._time_steps)

    def _call_tandem(self, inputs, counts, kernels, training):
        with tf.name_scope("per_step_products"):
            products = self._per_step_products(tf.stop_gradient(inputs),
                                               [tf.stop_gradient(k) for k in kernels])
        with tf.name_scope("time_sums"):
            summed = tf.reduce_sum(tf.cast(products, tf.float32), axis=1)  # float32 even in bf16
        # W c_in valued as sum_t W s(t) (linearity), gradient the VJP of W at the counts.
        preactivation = couplings.shared_linear(self._linear, summed, [counts, *kernels])
        with tf.name_scope("batch_norm_fold"):
            v_f, scale, folded_bias = self._normalize(preactivation, training)
            scale = tf.stop_gradient(scale) if scale is not None else None
            step_bias = tf.stop_gradient(folded_bias) / float(self._time_steps)
        products = tf.stop_gradient(products)
        if self.neuron is None:
            with tf.name_scope("synaptic_current"):
                current = tf.cast(products, tf.float32)
                current = (current * scale if scale is not None else current) + step_bias
            current = couplings.couple_train_to_value(current, v_f)
            return mark_current(couplings.attach_ann_value(current, v_f))
        # z(t) = W' s(t) + b'/T = (W s(t)) g + b'/T, formed step by step (as _snn_current).
        spikes = neurons.integrate_and_fire_affine(
            products, scale, step_bias, self.threshold, self.compute_dtype, neuron=self.neuron)
        with tf.name_scope("time_sums"):
            count = tf.reduce_sum(spikes, axis=1)
        return self._coupled_spikes(spikes, count, v_f)

    def _call_bptt(self, inputs, kernels, training):
        products = self._per_step_products(inputs, kernels)
        preactivation = tf.reduce_sum(tf.cast(products, tf.float32), axis=1)
        _, scale, folded_bias = self._normalize(preactivation, training)
        current = self._snn_current(products, scale, folded_bias)
        if self.neuron is None:
            return mark_current(current)
        spikes = self.neuron.fire_bptt(current, self.threshold)
        return mark_spikes(tf.cast(spikes, self.compute_dtype))

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            threshold=self.threshold, neuron=neurons.serialize(self.neuron), batch_norm=self.batch_norm,
            surrogate=surrogates.serialize(self.surrogate), mode=self.mode, momentum=self.momentum,
            epsilon=self.epsilon, analog_input=self.analog_input)
        for key in BN_INITIALIZERS:
            config[key] = keras.initializers.serialize(getattr(self, key))
        for key in BN_REGULARIZERS:
            config[key] = keras.regularizers.serialize(getattr(self, key))
        return config


kinds.register_layer(
    TandemLayer, role=lambda layer: "spiking_weighted" if layer.neuron is not None else "weighted",
    carries=lambda layer, inputs: (kinds.spikes_of(layer.neuron) if layer.neuron is not None
                                   else kinds.Carry("current")),
    neurons=lambda layer: layer.neuron is not None, nir=_nir_nodes.tandem_layer, convert="keep")
