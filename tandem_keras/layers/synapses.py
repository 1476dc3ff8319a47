"""The tandem layers' linear maps: TandemConv2D, TandemDepthwiseConv2D, TandemDense.

Each says only how its kernel is shaped and applied; the neuron, the BN, the modes and the
coupling are :class:`tandem_keras.layers.tandem_layers.TandemLayer`'s, and the gradient is
the map's own vector-Jacobian product at the counts (``tandem.shared_linear``, method §3.2).
"""

from __future__ import annotations

from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf

from tandem_keras._checks import check_choice, check_pair
from tandem_keras.layers.tandem_layers import TandemLayer


@keras.saving.register_keras_serializable(package="tandem_keras")
class TandemConv2D(TandemLayer):
    """2-D convolutional tandem layer: ``[batch, T, H, W, C]`` spikes -> ``[batch, T, H', W', filters]``.

    Takes the arguments of ``keras.layers.Conv2D`` (channels_last), plus
    ``threshold``, ``batch_norm``, ``surrogate``, ``mode``, ``momentum`` and
    ``epsilon``. T is read from the time axis of the input. Forward and gradient:
    see :class:`TandemLayer`; the T convolutions run as one, with time folded
    into the batch, and the coupled ANN reuses their sum (no extra convolution).

    Example:
      >>> import keras, tandem_keras as tk
      >>> model = keras.Sequential([
      ...     keras.Input((8, 8, 1)),
      ...     keras.layers.Conv2D(8, 3, padding="same"), keras.layers.BatchNormalization(),
      ...     tk.SpikeEncoder(time_steps=4),
      ...     tk.TandemConv2D(16, 3, strides=2),
      ...     tk.TimeFlatten(), tk.TandemDense(32), tk.SpikeCount(), keras.layers.Dense(10)])
      >>> model(tf.zeros([2, 8, 8, 1])).shape
      TensorShape([2, 10])
    """

    _input_rank = 5
    _layout = "[batch, time, height, width, channels]"

    def __init__(self, filters: int, kernel_size, strides=1, padding: str = "same",
                 data_format: Optional[str] = None, dilation_rate=1, groups: int = 1,
                 activation: Any = None, **kwargs: Any) -> None:
        super().__init__(activation=activation, **kwargs)
        owner = type(self).__name__
        if groups != 1:
            raise ValueError(f"{owner}: only groups=1 is supported, got groups={groups!r}.")
        self.filters = _positive_int(filters, "filters", owner)
        _conv_arguments(self, kernel_size, strides, padding, data_format, dilation_rate)

    def _kernel_shape(self, input_dim: int) -> tuple:
        return self.kernel_size + (input_dim, self.filters)

    def _apply_kernel(self, x, kernel):
        return tf.nn.conv2d(x, kernel, strides=self.strides, padding=self.padding.upper(),
                            dilations=self.dilation_rate)

    def _output_spatial_shape(self, input_shape):
        return _conv_spatial(self, input_shape) + (self.filters,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                      padding=self.padding, dilation_rate=self.dilation_rate)
        return config


@keras.saving.register_keras_serializable(package="tandem_keras")
class TandemDepthwiseConv2D(TandemLayer):
    """Depthwise convolutional tandem layer: ``[batch, T, H, W, C]`` -> ``[batch, T, H', W', C m]``.

    Takes the arguments of ``keras.layers.DepthwiseConv2D`` (channels_last;
    ``depth_multiplier`` m) plus the tandem ones of :class:`TandemLayer`. Each input channel
    has its own ``k x k x m`` kernel; BN and bias act on the ``C m`` output channels. Its
    gradient is the depthwise convolution's own vector-Jacobian product at the counts
    (``tandem.shared_linear``): no backward of its own (method §3.2).

    Example:
      >>> layer = TandemDepthwiseConv2D(3, depth_multiplier=2)
      >>> layer(tf.zeros([1, 4, 6, 6, 5])).shape                 # T = 4, 5 channels
      TensorShape([1, 4, 6, 6, 10])
    """

    _input_rank = 5
    _layout = "[batch, time, height, width, channels]"

    def __init__(self, kernel_size, strides=1, padding: str = "same", depth_multiplier: int = 1,
                 data_format: Optional[str] = None, dilation_rate=1, activation: Any = None,
                 depthwise_initializer: Any = None, depthwise_regularizer: Any = None,
                 depthwise_constraint: Any = None, **kwargs: Any) -> None:
        # Keras's names for the kernel's initializer, regularizer and constraint.
        for name, value in (("initializer", depthwise_initializer), ("regularizer", depthwise_regularizer),
                            ("constraint", depthwise_constraint)):
            if value is not None:
                kwargs[f"kernel_{name}"] = value
        super().__init__(activation=activation, **kwargs)
        owner = type(self).__name__
        self.depth_multiplier = _positive_int(depth_multiplier, "depth_multiplier", owner)
        _conv_arguments(self, kernel_size, strides, padding, data_format, dilation_rate)

    def _kernel_shape(self, input_dim: int) -> tuple:
        return self.kernel_size + (input_dim, self.depth_multiplier)

    def _channels(self, input_dim: int) -> int:
        return input_dim * self.depth_multiplier

    def _fold_kernel(self, kernel, scale):
        return kernel * tf.reshape(scale, kernel.shape[-2:])   # channel c*m + j is kernel[..., c, j]

    def _apply_kernel(self, x, kernel):
        return tf.nn.depthwise_conv2d(x, kernel, strides=(1, *self.strides, 1),
                                      padding=self.padding.upper(), dilations=self.dilation_rate)

    def _output_spatial_shape(self, input_shape):
        return _conv_spatial(self, input_shape) + (int(input_shape[-1]) * self.depth_multiplier,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(kernel_size=self.kernel_size, strides=self.strides, padding=self.padding,
                      depth_multiplier=self.depth_multiplier, dilation_rate=self.dilation_rate)
        return config


@keras.saving.register_keras_serializable(package="tandem_keras")
class TandemDense(TandemLayer):
    """Fully connected tandem layer: ``[batch, T, features]`` spikes -> ``[batch, T, units]``.

    Takes the arguments of ``keras.layers.Dense`` plus ``threshold``,
    ``batch_norm``, ``surrogate``, ``mode``, ``momentum`` and ``epsilon``. Forward
    and gradient: see :class:`TandemLayer`. With ``batch_norm=False`` followed by
    :class:`SpikeCount` it is the spike-count output layer of method §4.

    Example:
      >>> layer = TandemDense(3, batch_norm=False)
      >>> spikes = layer(tf.ones([1, 4, 2]))       # batch 1, T = 4, 2 inputs
      >>> spikes.shape
      TensorShape([1, 4, 3])
    """

    _input_rank = 3
    _layout = "[batch, time, features]"

    def __init__(self, units: int, activation: Any = None, **kwargs: Any) -> None:
        super().__init__(activation=activation, **kwargs)
        self.units = _positive_int(units, "units", type(self).__name__)

    def _kernel_shape(self, input_dim: int) -> tuple:
        return (input_dim, self.units)

    def _apply_kernel(self, x, kernel):
        return tf.matmul(x, kernel)

    def _output_spatial_shape(self, input_shape):
        return (self.units,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(units=self.units)
        return config


def _positive_int(value, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}.")
    return int(value)


def _conv_arguments(layer, kernel_size, strides, padding, data_format, dilation_rate) -> None:
    """Checks and sets a convolution's kernel_size, strides, padding and dilation_rate."""
    owner = type(layer).__name__
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{owner}: only data_format='channels_last' is supported, got {data_format!r}.")
    layer.kernel_size = check_pair(kernel_size, "kernel_size", owner)
    layer.strides = check_pair(strides, "strides", owner)
    layer.dilation_rate = check_pair(dilation_rate, "dilation_rate", owner)
    layer.padding = check_choice(str(padding).lower(), "padding", ("same", "valid"), owner)
    if max(layer.strides) > 1 and max(layer.dilation_rate) > 1:
        raise ValueError(f"{owner}: strides > 1 together with dilation_rate > 1 is not supported.")


def _conv_spatial(layer, input_shape) -> tuple:
    """Output height and width of a convolution with TensorFlow's padding."""
    spatial = []
    for size, k, s, d in zip(input_shape[2:4], layer.kernel_size, layer.strides, layer.dilation_rate):
        if size is None:
            spatial.append(None)
        elif layer.padding == "same":
            spatial.append(-(-size // s))
        else:
            spatial.append(-(-(size - (k - 1) * d) // s))
    return tuple(spatial)
