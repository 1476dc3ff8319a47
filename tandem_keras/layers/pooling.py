"""Pooling on spike trains ``[batch, T, H, W, C]``, step by step (method §3, pooling).

Each layer is Keras's pooling layer with :class:`SpikeTrainPooling` mixed in (Keras checks
the arguments, computes the output shape and pools; the mixin adds the time axis, folded
into the batch so that the T poolings run as one op, the modes and the coupling):

* :class:`AveragePooling2D`, :class:`GlobalAveragePooling2D`: linear, no neurons. Their
  output (fractions of spikes) is an input current of the next weighted tandem layer, which
  integrates it exactly: ``W (P s(t)) = (W P) s(t)``, the composite linear map.
* :class:`MaxPooling2D`: the per-step maximum of binary spikes, an OR: a spike train again,
  exact, a spiking layer without synapses.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras
import tensorflow as tf

from tandem_keras import _nir_nodes, couplings, kinds
from tandem_keras._checks import check_spike_values, layer_label, mark_current, mark_spikes
from tandem_keras.modes import ModeMixin


class SpikeTrainPooling(ModeMixin):
    """Mixin of a Keras pooling layer: the layer applied to every step of a train."""

    def __init__(self, *args: Any, mode: str = "tandem", **kwargs: Any) -> None:
        keras_init = inspect.signature(super().__init__)
        given = keras_init.bind_partial(*args, **kwargs).arguments
        for name, default in (("data_format", "channels_last"), ("pool_size", 2)):
            if name in keras_init.parameters and name not in given:
                kwargs[name] = default
        super().__init__(*args, **kwargs)
        if self.data_format != "channels_last":
            raise ValueError(f"{type(self).__name__}: only data_format='channels_last' is supported, "
                             f"got {self.data_format!r} (the time axis is axis 1).")
        self.mode = mode
        self._step_ndim = int(self.input_spec.ndim)   # Keras's: one step [batch, H, W, C]
        self.input_spec = None                         # the train's, set at build
        self._input_proven: Any = None

    def build(self, input_shape) -> None:
        if len(input_shape) != self._step_ndim + 1 or input_shape[-1] is None:
            raise ValueError(
                f"{layer_label(self)} expects a spike train of shape [batch, time, height, width, "
                f"channels] (rank {self._step_ndim + 1}, known channels), got shape "
                f"{tuple(input_shape)}. Use keras.layers.{type(self).__name__} on spike counts "
                "(after tk.SpikeCount()).")
        self.input_spec = keras.InputSpec(ndim=len(input_shape), axes={-1: int(input_shape[-1])})

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != self._step_ndim + 1:
            return super().compute_output_shape(input_shape)
        step = super().compute_output_shape((input_shape[0],) + input_shape[2:])
        return (step[0], input_shape[1]) + tuple(step[1:])

    def _pool(self, x: tf.Tensor) -> tf.Tensor:
        """Keras's pooling of one step ``[batch, H, W, C]``."""
        return super().call(x)

    def _pooled_current(self, inputs):
        """The pooled train (a current) with its ANN value, the pooled input value."""
        x = tf.cast(inputs, tf.float32)
        if self.mode not in ("tandem", "quantized"):
            return mark_current(tf.cast(couplings.per_step(self._pool, x), self.compute_dtype))
        # Linear: the ANN value is the pooled ANN value of the input (its gradient P^T grad).
        pooled = couplings.per_step(self._pool, tf.stop_gradient(x))
        value = self._pool(couplings.ann_value(inputs, tf.float32))
        pooled = couplings.couple_train_to_value(pooled, value)
        return mark_current(couplings.attach_ann_value(tf.cast(pooled, self.compute_dtype), value))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(mode=self.mode)
        return config


@keras.saving.register_keras_serializable(package="tandem_keras")
class AveragePooling2D(SpikeTrainPooling, keras.layers.AveragePooling2D):
    """Average pooling of every time step: ``x(t) = P s(t)``, ``[batch, T, H, W, C]``.

    Takes the arguments of ``keras.layers.AveragePooling2D``. Forward: ``x_ij(t) = mean over
    the window of s(t)`` (with ``padding="same"`` a border window averages only its elements
    inside the image, as Keras's). Linear, no neurons: the pooled train is an exact input
    current of the next weighted tandem layer (``W x(t) = (W P) s(t)``), whose input check
    accepts it. Its ANN value is the pooled count ``P c``. Gradient: the pooling's transpose
    at every step, which is the coupled ANN's ``P^T grad`` on the counts (the layers after
    it send every step the same gradient). Every mode computes the same (``"ann"``: the
    pooled activation). Under ``mixed_bfloat16`` the average is formed in float32; fractions
    ``k / n`` are exact when the window size ``n`` is a power of two.

    Example:
      >>> import tensorflow as tf
      >>> s = tf.constant([[[[[1.0], [0.0]], [[1.0], [1.0]]]]])     # batch 1, T = 1, 2x2, 1 channel
      >>> float(AveragePooling2D(2)(s)[0, 0, 0, 0, 0])
      0.75
    """

    def call(self, inputs):
        return self._pooled_current(inputs)


@keras.saving.register_keras_serializable(package="tandem_keras")
class GlobalAveragePooling2D(SpikeTrainPooling, keras.layers.GlobalAveragePooling2D):
    """Spatial mean of every time step: ``[batch, T, H, W, C] -> [batch, T, C]`` (or
    ``[batch, T, 1, 1, C]`` with ``keepdims=True``).

    Takes the arguments of ``keras.layers.GlobalAveragePooling2D``. Forward:
    ``x_c(t) = mean_ij s_ijc(t)``, an exact input current of a following ``TandemDense``
    (e.g. the spike-count readout). Gradient: its transpose at every step (see
    :class:`AveragePooling2D`). Before an analog readout on counts, ``tk.SpikeCount()``
    followed by ``keras.layers.GlobalAveragePooling2D()`` gives the same numbers.

    Example:
      >>> import tensorflow as tf
      >>> GlobalAveragePooling2D()(tf.ones([2, 3, 4, 4, 5])).shape
      TensorShape([2, 3, 5])
    """

    def call(self, inputs):
        return self._pooled_current(inputs)


@keras.saving.register_keras_serializable(package="tandem_keras")
class MaxPooling2D(SpikeTrainPooling, keras.layers.MaxPooling2D):
    """Max pooling of every time step, an OR of spikes: ``s_ij(t) = max over the window of s(t)``.

    Takes the arguments of ``keras.layers.MaxPooling2D``. Forward: exact and binary (a spike
    train), a spiking layer without synapses; a Keras ``TimeDistributed(MaxPooling2D)``
    computes the same values. Gradient (``"tandem"``, ``"quantized"``): the coupled ANN's max
    pooling of the input counts, ``a = max_window c``, read as a rate (``grad_a = sum_t
    grad_s(t) / T``) and sent to the window's largest count, ``grad_s_in(t) = grad_c_in``
    (``a`` is a lower bound of the OR's count, equal when the window's spikes coincide; for
    front-loaded trains, ``"quantized"``, it is exact). ``"bptt"``: the per-step max
    differentiated at every step; ``"ann"``: max pooling of the activation. Its input must
    be spikes: refused when the model is built if its graph shows otherwise (a current, a
    Keras ``Add`` of spike trains), else checked at inference as a tandem layer's.

    Example:
      >>> import tensorflow as tf
      >>> s = tf.constant([[[[[1.0], [0.0]], [[0.0], [0.0]]]]])
      >>> float(MaxPooling2D(2)(s)[0, 0, 0, 0, 0])
      1.0
    """

    def __call__(self, *args: Any, **kwargs: Any):
        inputs = args[0] if args else kwargs.get("inputs")
        if self.mode != "ann" and keras.backend.is_keras_tensor(inputs):
            proven = kinds.check_input(inputs, layer_label(self), accept=("spikes",)) is not None
            if kinds.carried_by(inputs).signed:
                raise ValueError(f"{layer_label(self)} takes spikes of 0/1 and is fed signed spikes "
                                 "(neurons with negative_spikes=True), whose OR is not their "
                                 "maximum; use tk.AveragePooling2D.")
            self._input_proven = proven and self._input_proven is not False
        return super().__call__(*args, **kwargs)

    def call(self, inputs, training=None):
        if self.mode == "ann":
            return couplings.per_step(self._pool, inputs)
        if not training and not self._input_proven:
            check_spike_values(inputs, layer_label(self), accept_currents=False)
        if self.mode == "bptt":
            return mark_spikes(couplings.per_step(self._pool, inputs))
        spikes = couplings.per_step(self._pool, tf.stop_gradient(inputs))
        ann = self._pool(couplings.ann_value(inputs))       # max pooling of the input counts
        with tf.name_scope("time_sums"):
            count = couplings.couple_value(tf.reduce_sum(spikes, axis=1), ann)
        out = couplings.couple_train_to_value(spikes, ann)
        return mark_spikes(couplings.attach_ann_value(out, count))


kinds.register_layer(AveragePooling2D, carries="current", nir=_nir_nodes.avg_pool)
kinds.register_layer(GlobalAveragePooling2D, carries="current", nir=_nir_nodes.global_avg_pool)
kinds.register_layer(MaxPooling2D, carries="spikes", nir=_nir_nodes.max_pool)
