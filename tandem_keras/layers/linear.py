"""Tandem versions of Keras's linear layers: ``class TandemX(TandemLayer, keras.layers.X)``.

Keras's class checks the arguments, makes the kernel(s) and the bias, computes the output
shape and applies the map; :class:`~tandem_keras.layers.tandem_layer.TandemLayer` adds the
time axis, the neuron, the fused BN, the modes and the coupling, whose gradient is the map's
own vector-Jacobian product at the counts (``couplings.shared_linear``, method §3.2). A class
says at most which Keras op its map is (``_linear``) and which kernels it takes; what every
tool reads of it (SynOps, NIR, ``tk.convert``) comes from its Keras class's entry in the
registry of layer kinds (:mod:`tandem_keras.kinds`). Forward and gradient: see
:class:`TandemLayer`.
"""

from __future__ import annotations

from typing import Any

import keras

from tandem_keras.layers.tandem_layer import TandemLayer

__all__ = ["TandemConv1D", "TandemConv2D", "TandemDepthwiseConv2D", "TandemSeparableConv2D",
           "TandemDense"]


@keras.saving.register_keras_serializable(package="tandem_keras")
class TandemConv1D(TandemLayer, keras.layers.Conv1D):
    """1-D convolutional tandem layer: ``[batch, T, steps, C]`` spikes -> ``[batch, T, steps', filters]``.

    For sequences (audio, time series, keyword spotting): the sequence's own axis is
    ``steps``; the SNN's time axis T is axis 1. Takes the arguments of
    ``keras.layers.Conv1D`` (``padding="same"`` by default; ``"causal"``: output step ``i``
    reads inputs up to ``i`` only) and the tandem ones of :class:`TandemLayer`. Forward,
    per time step ``t``: ``z(t) = W' * s_in(t) + b'/T`` (``*`` the 1-D convolution), the
    neuron of :class:`TandemLayer`; gradient: the coupled ANN's, through the convolution's
    vector-Jacobian product at the counts.

    Example:
      >>> import tensorflow as tf, tandem_keras as tk
      >>> layer = tk.TandemConv1D(8, 3, padding="causal")
      >>> layer(tf.zeros([2, 4, 16, 5])).shape                  # batch 2, T = 4, 16 steps, 5 channels
      TensorShape([2, 4, 16, 8])
    """

    def _linear(self, x, kernel):
        padding = self.padding
        if padding == "causal":   # Keras's Conv1D pads the sequence's start, then "valid"
            x = keras.ops.pad(x, [[0, 0], [self.dilation_rate[0] * (self.kernel_size[0] - 1), 0], [0, 0]])
            padding = "valid"
        return keras.ops.conv(x, kernel, strides=list(self.strides), padding=padding,
                              dilation_rate=self.dilation_rate, data_format=self.data_format)


@keras.saving.register_keras_serializable(package="tandem_keras")
class TandemConv2D(TandemLayer, keras.layers.Conv2D):
    """2-D convolutional tandem layer: ``[batch, T, H, W, C]`` spikes -> ``[batch, T, H', W', filters]``.

    Takes the arguments of ``keras.layers.Conv2D`` (channels_last, ``padding="same"`` by
    default) and the tandem ones of :class:`TandemLayer`. Forward, per time step:
    ``z(t) = W' * s_in(t) + b'/T``, the T convolutions run as one with time folded into the
    batch, and the coupled ANN reuses their sum (no extra convolution); gradient: the
    convolution's vector-Jacobian product at the counts (method §3.2).

    Example:
      >>> import keras, tensorflow as tf, tandem_keras as tk
      >>> model = keras.Sequential([
      ...     keras.Input((8, 8, 1)),
      ...     keras.layers.Conv2D(8, 3, padding="same"), keras.layers.BatchNormalization(),
      ...     tk.SpikeEncoder(time_steps=4),
      ...     tk.TandemConv2D(16, 3, strides=2),
      ...     tk.TimeFlatten(), tk.TandemDense(32), tk.SpikeCount(), keras.layers.Dense(10)])
      >>> model(tf.zeros([2, 8, 8, 1])).shape
      TensorShape([2, 10])
    """


@keras.saving.register_keras_serializable(package="tandem_keras")
class TandemDepthwiseConv2D(TandemLayer, keras.layers.DepthwiseConv2D):
    """Depthwise convolutional tandem layer: ``[batch, T, H, W, C]`` -> ``[batch, T, H', W', C m]``.

    Takes the arguments of ``keras.layers.DepthwiseConv2D`` (``depth_multiplier`` m,
    ``depthwise_initializer``, ...; ``kernel_initializer``, ``kernel_regularizer`` and
    ``kernel_constraint`` are accepted for them) and the tandem ones of :class:`TandemLayer`.
    Each input channel has its own ``k x k x m`` kernel; BN and bias act on the ``C m``
    output channels (channel ``c m + j`` reads input channel ``c``). Forward per step
    ``z(t) = W' * s_in(t) + b'/T``; gradient: the depthwise convolution's own
    vector-Jacobian product at the counts (method §3.2).

    Example:
      >>> import tensorflow as tf
      >>> layer = TandemDepthwiseConv2D(3, depth_multiplier=2)
      >>> layer(tf.zeros([1, 4, 6, 6, 5])).shape                 # T = 4, 5 channels
      TensorShape([1, 4, 6, 6, 10])
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        for name in ("initializer", "regularizer", "constraint"):
            if f"kernel_{name}" in kwargs:
                kwargs[f"depthwise_{name}"] = kwargs.pop(f"kernel_{name}")
        super().__init__(*args, **kwargs)

    def _linear(self, x, kernel):
        return keras.ops.depthwise_conv(x, kernel, strides=self.strides, padding=self.padding,
                                        dilation_rate=self.dilation_rate, data_format=self.data_format)

    def _fold(self, kernels, scale):
        kernel = kernels[0]
        return [kernel * keras.ops.reshape(scale, kernel.shape[-2:])]   # channel c m + j


@keras.saving.register_keras_serializable(package="tandem_keras")
class TandemSeparableConv2D(TandemLayer, keras.layers.SeparableConv2D):
    """Separable convolutional tandem layer: ``[batch, T, H, W, C]`` -> ``[batch, T, H', W', filters]``.

    Takes the arguments of ``keras.layers.SeparableConv2D`` and the tandem ones of
    :class:`TandemLayer`. The depthwise and the pointwise convolution are one linear map of
    the input, ``W = P D``: one coupling, no neurons between them. Forward per step
    ``z(t) = P' (D s_in(t)) + b'/T`` (the BN scale folded into the pointwise kernel ``P``);
    gradient: the map's vector-Jacobian product at the counts, for both kernels.
    ``folded_weights()`` returns ``((depthwise, pointwise'), bias)``.

    Example:
      >>> import tensorflow as tf
      >>> layer = TandemSeparableConv2D(8, 3, depth_multiplier=2)
      >>> layer(tf.zeros([1, 4, 6, 6, 5])).shape
      TensorShape([1, 4, 6, 6, 8])
    """

    def _kernels(self):
        return [self.depthwise_kernel, self.pointwise_kernel]

    def _linear(self, x, depthwise, pointwise):
        return keras.ops.separable_conv(x, depthwise, pointwise, strides=self.strides,
                                        padding=self.padding, dilation_rate=self.dilation_rate,
                                        data_format=self.data_format)


@keras.saving.register_keras_serializable(package="tandem_keras")
class TandemDense(TandemLayer, keras.layers.Dense):
    """Fully connected tandem layer: ``[batch, T, features]`` spikes -> ``[batch, T, units]``.

    Takes the arguments of ``keras.layers.Dense`` and the tandem ones of
    :class:`TandemLayer`. Forward per step ``z(t) = W'^T s_in(t) + b'/T``; gradient: the
    coupled ANN's (:class:`TandemLayer`). With ``batch_norm=False`` followed by
    :class:`SpikeCount` it is the spike-count output layer of method §4.

    Example:
      >>> import tensorflow as tf
      >>> layer = TandemDense(3, batch_norm=False)
      >>> spikes = layer(tf.ones([1, 4, 2]))       # batch 1, T = 4, 2 inputs
      >>> spikes.shape
      TensorShape([1, 4, 3])
    """

    def _linear(self, x, kernel):
        return keras.ops.matmul(x, kernel)
