"""Pooling on spike trains ``[batch, T, H, W, C]``, step by step (method §3, pooling).

* :class:`AveragePooling2D`, :class:`GlobalAveragePooling2D`: linear, no neurons. Their
  output (fractions of spikes) is an input current of the next weighted tandem layer, which
  integrates it exactly: ``W (P s(t)) = (W P) s(t)``, the composite linear map.
* :class:`MaxPooling2D`: the per-step maximum of binary spikes, an OR: a spike train again,
  exact, a spiking layer without synapses.

The time axis is folded into the batch, so the T poolings run as one op.
"""

from __future__ import annotations

from typing import Any, Optional

import keras
import tensorflow as tf

from tandem_keras import tandem
from tandem_keras._checks import (ModeMixin, check_choice, check_pair, check_spike_values,
                                  layer_label, mark_current, mark_spikes)

_LAYOUT = "[batch, time, height, width, channels]"


class _SpikeTrainPooling2D(ModeMixin, keras.layers.Layer):
    """Shared arguments, checks and config of the pooling layers on spike trains."""

    def __init__(self, pool_size=2, strides=None, padding: str = "valid", mode: str = "tandem",
                 data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{owner}: only data_format='channels_last' is supported, got {data_format!r}.")
        self.pool_size = check_pair(pool_size, "pool_size", owner)
        self.strides = self.pool_size if strides is None else check_pair(strides, "strides", owner)
        self.padding = check_choice(str(padding).lower(), "padding", ("valid", "same"), owner)
        self.mode = mode

    def build(self, input_shape) -> None:
        _check_rank(self, input_shape)
        self.input_spec = keras.InputSpec(ndim=5, axes={-1: int(input_shape[-1])})

    def compute_output_shape(self, input_shape):
        spatial = []
        for size, k, s in zip(input_shape[2:4], self.pool_size, self.strides):
            if size is None:
                spatial.append(None)
            elif self.padding == "same":
                spatial.append(-(-size // s))
            else:
                spatial.append(-(-(size - k + 1) // s))
        return (input_shape[0], input_shape[1], *spatial, input_shape[4])

    def _pool(self, x: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(pool_size=self.pool_size, strides=self.strides, padding=self.padding,
                      mode=self.mode)
        return config


def _check_rank(layer, input_shape) -> None:
    if len(input_shape) != 5 or input_shape[-1] is None:
        raise ValueError(
            f"{layer_label(layer)} expects a spike train of shape {_LAYOUT} (rank 5, known "
            f"channels), got shape {tuple(input_shape)}. Use keras.layers.{type(layer).__name__} "
            "on spike counts (after tk.SpikeCount()).")


@keras.saving.register_keras_serializable(package="tandem_keras")
class AveragePooling2D(_SpikeTrainPooling2D):
    """Average pooling of every time step: ``x(t) = P s(t)``, ``[batch, T, H, W, C]``.

    Forward: ``x_ij(t) = mean over the window of s(t)`` (with ``padding="same"`` a border
    window averages only its elements inside the image, as ``keras.layers.AveragePooling2D``).
    Linear, no neurons: the pooled train is an exact input current of the next weighted
    tandem layer (``W x(t) = (W P) s(t)``), whose input check accepts it. Its ANN value is
    the pooled count ``P c``. Gradient: the pooling's transpose at every step, which is the
    coupled ANN's ``P^T grad`` on the counts (the layers after it send every step the same
    gradient). Every mode computes the same (``"ann"``: the pooled activation). Under
    ``mixed_bfloat16`` the average is formed in float32; fractions ``k / n`` are exact when
    the window size ``n`` is a power of two.

    Example:
      >>> import tensorflow as tf
      >>> s = tf.constant([[[[[1.0], [0.0]], [[1.0], [1.0]]]]])     # batch 1, T = 1, 2x2, 1 channel
      >>> float(AveragePooling2D(2)(s)[0, 0, 0, 0, 0])
      0.75
    """

    def _pool(self, x):
        return tf.nn.avg_pool2d(x, self.pool_size, self.strides, self.padding.upper())

    def call(self, inputs):
        x = tf.cast(inputs, tf.float32)
        if self.mode not in ("tandem", "quantized"):
            return mark_current(tf.cast(tandem.per_step(self._pool, x), self.compute_dtype))
        # Linear: the ANN value is the pooled ANN value of the input (its gradient P^T grad).
        pooled = tandem.per_step(self._pool, tf.stop_gradient(x))
        value = self._pool(tandem.ann_value(inputs, tf.float32))
        pooled = tandem.couple_train_to_value(pooled, value)
        return mark_current(tandem.attach_ann_value(tf.cast(pooled, self.compute_dtype), value))


@keras.saving.register_keras_serializable(package="tandem_keras")
class MaxPooling2D(_SpikeTrainPooling2D):
    """Max pooling of every time step, an OR of spikes: ``s_ij(t) = max over the window of s(t)``.

    Forward: exact and binary (a spike train), a spiking layer without synapses; a Keras
    ``TimeDistributed(MaxPooling2D)`` computes the same values. Gradient (``"tandem"``,
    ``"quantized"``): the coupled ANN's max pooling of the input counts, ``a = max_window c``,
    read as a rate (``grad_a = sum_t grad_s(t) / T``) and sent to the window's largest count,
    ``grad_s_in(t) = grad_c_in`` (``a`` is a lower bound of the OR's count, equal when the
    window's spikes coincide; for front-loaded trains, ``"quantized"``, it is exact).
    ``"bptt"``: the per-step max differentiated at every step; ``"ann"``: max pooling of the
    activation. At inference the input must be spikes (checked as a tandem layer's).

    Example:
      >>> import tensorflow as tf
      >>> s = tf.constant([[[[[1.0], [0.0]], [[0.0], [0.0]]]]])
      >>> float(MaxPooling2D(2)(s)[0, 0, 0, 0, 0])
      1.0
    """

    def _pool(self, x):
        return tf.nn.max_pool2d(x, self.pool_size, self.strides, self.padding.upper())

    def call(self, inputs, training=None):
        if self.mode == "ann":
            return tandem.per_step(self._pool, inputs)
        if not training:
            check_spike_values(inputs, layer_label(self), accept_currents=False)
        if self.mode == "bptt":
            return mark_spikes(tandem.per_step(self._pool, inputs))
        spikes = tandem.per_step(self._pool, tf.stop_gradient(inputs))
        ann = self._pool(tandem.ann_value(inputs))       # max pooling of the input counts
        with tf.name_scope("time_sums"):
            count = tandem.couple_value(tf.reduce_sum(spikes, axis=1), ann)
        out = tandem.couple_train_to_value(spikes, ann)
        return mark_spikes(tandem.attach_ann_value(out, count))


@keras.saving.register_keras_serializable(package="tandem_keras")
class GlobalAveragePooling2D(ModeMixin, keras.layers.Layer):
    """Spatial mean of every time step: ``[batch, T, H, W, C] -> [batch, T, C]`` (or
    ``[batch, T, 1, 1, C]`` with ``keepdims=True``).

    Forward: ``x_c(t) = mean_ij s_ijc(t)``, an exact input current of a following
    ``TandemDense`` (e.g. the spike-count readout). Gradient: its transpose at every step
    (see :class:`AveragePooling2D`). Before an analog readout on counts,
    ``tk.SpikeCount()`` followed by ``keras.layers.GlobalAveragePooling2D()`` gives the same
    numbers.

    Example:
      >>> import tensorflow as tf
      >>> GlobalAveragePooling2D()(tf.ones([2, 3, 4, 4, 5])).shape
      TensorShape([2, 3, 5])
    """

    def __init__(self, keepdims: bool = False, mode: str = "tandem",
                 data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"GlobalAveragePooling2D: only data_format='channels_last' is "
                             f"supported, got {data_format!r}.")
        self.keepdims = bool(keepdims)
        self.mode = mode

    def build(self, input_shape) -> None:
        _check_rank(self, input_shape)
        self.input_spec = keras.InputSpec(ndim=5, axes={-1: int(input_shape[-1])})

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return (input_shape[0], input_shape[1], 1, 1, input_shape[4])
        return (input_shape[0], input_shape[1], input_shape[4])

    def call(self, inputs):
        x = tf.cast(inputs, tf.float32)
        if self.mode not in ("tandem", "quantized"):
            return mark_current(tf.cast(tf.reduce_mean(x, axis=[2, 3], keepdims=self.keepdims),
                                        self.compute_dtype))
        pooled = tf.reduce_mean(tf.stop_gradient(x), axis=[2, 3], keepdims=self.keepdims)
        value = tf.reduce_mean(tandem.ann_value(inputs, tf.float32), axis=[1, 2], keepdims=self.keepdims)
        pooled = tandem.couple_train_to_value(pooled, value)
        return mark_current(tandem.attach_ann_value(tf.cast(pooled, self.compute_dtype), value))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(keepdims=self.keepdims, mode=self.mode)
        return config
