"""The fused batch normalization of a tandem layer (method §3).

``W' = W g``, ``b' = (b - mu) g + beta``, ``g = gamma / sqrt(var + eps)``: batch statistics in
training, moving statistics (momentum, Keras's names) in inference. A mixin of
:class:`tandem_keras.layers.tandem_layer.TandemLayer`, whose Keras base class makes the kernel
and the bias; a layer says which kernels its linear map takes (``_kernels``), how it is
applied (``_linear``) and how the scale folds into them (``_fold``).
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

#: The BN arguments of a tandem layer, beside Keras's kernel and bias ones.
BN_INITIALIZERS = ("gamma_initializer", "beta_initializer", "moving_mean_initializer",
                   "moving_variance_initializer")
BN_REGULARIZERS = ("gamma_regularizer", "beta_regularizer")


class FoldedBatchNorm:
    """BN weights, ``_normalize`` and ``folded_weights``."""

    def _kernels(self) -> list:
        """The kernels of the linear map, in ``_linear``'s order (Keras's weights)."""
        return [self.kernel]

    def _linear(self, x: tf.Tensor, *kernels: tf.Tensor) -> tf.Tensor:
        """The linear map ``W x`` on one step ``[batch, ...]`` (no bias)."""
        raise NotImplementedError

    def _fold(self, kernels: list, scale: tf.Tensor) -> list:
        """The per-output-channel ``scale`` folded into the kernels: ``W g`` (the last
        kernel's last axis is the output channel)."""
        return list(kernels[:-1]) + [kernels[-1] * scale]

    def _build_batch_norm(self, channels: int) -> None:
        if not self.batch_norm:
            return
        shape = (int(channels),)
        self.gamma = self.add_weight(name="gamma", shape=shape, initializer=self.gamma_initializer,
                                     regularizer=self.gamma_regularizer, autocast=False)
        self.beta = self.add_weight(name="beta", shape=shape, initializer=self.beta_initializer,
                                    regularizer=self.beta_regularizer, autocast=False)
        # aggregation="mean": under a tf.distribute strategy every replica's update is
        # averaged into one value (else each replica keeps its own statistics).
        self.moving_mean = self.add_weight(name="moving_mean", shape=shape, trainable=False,
                                           initializer=self.moving_mean_initializer, autocast=False,
                                           aggregation="mean")
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=shape, trainable=False,
            initializer=self.moving_variance_initializer, autocast=False, aggregation="mean")

    def _normalize(self, preactivation: tf.Tensor, training: bool):
        """Returns ``(V_f, scale, folded_bias)`` in float32 for ``u = W * c_in``.

        ``V_f = (u + b - mu) * g + beta = u * g + b'``; without BN ``g = 1`` (None).
        """
        u = tf.cast(preactivation, tf.float32)
        bias = tf.cast(self.bias, tf.float32) if self.use_bias else None
        if bias is not None:
            u = u + bias
        if not self.batch_norm:
            folded_bias = bias if bias is not None else tf.zeros([u.shape[-1]], tf.float32)
            return u, None, folded_bias
        axes = list(range(u.shape.rank - 1))
        # The statistics in float32 also when the variables are float16 (dtype policy "float16").
        if training:
            mean, variance = tf.nn.moments(u, axes=axes)
            for variable, value in ((self.moving_mean, mean), (self.moving_variance, variance)):
                updated = tf.cast(variable, tf.float32) * self.momentum + value * (1.0 - self.momentum)
                variable.assign(tf.cast(updated, variable.dtype))
        else:
            mean = tf.cast(self.moving_mean, tf.float32)
            variance = tf.cast(self.moving_variance, tf.float32)
        beta = tf.cast(self.beta, tf.float32)
        scale = tf.cast(self.gamma, tf.float32) * tf.math.rsqrt(variance + self.epsilon)
        v_f = (u - mean) * scale + beta
        bias_term = -mean if bias is None else bias - mean
        folded_bias = bias_term * scale + beta
        return v_f, scale, folded_bias

    def folded_weights(self, training: bool = False, inputs: Optional[tf.Tensor] = None):
        """The BN-folded ``(kernel, bias)`` the SNN runs with.

        ``W' = W * g``, ``b' = (b - mu) * g + beta``, ``g = gamma / sqrt(var + eps)``
        with the moving statistics (``training=False``), or with the batch statistics
        of ``inputs`` (a spike train) when ``training=True``. Without BN:
        ``(W, b)``. A layer with two kernels (``TandemSeparableConv2D``) returns them as a
        tuple ``(depthwise, pointwise')``, the scale folded into the second. Reading does
        not update the moving statistics.

        Example:
          >>> import tensorflow as tf, tandem_keras as tk
          >>> layer = tk.TandemDense(4)
          >>> _ = layer(tf.zeros([2, 3, 5]))
          >>> kernel, bias = layer.folded_weights()
          >>> tuple(kernel.shape), tuple(bias.shape)
          ((5, 4), (4,))
        """
        if not self.built:
            raise ValueError(f"{self.name}: the layer is not built yet; call it on a spike train first.")
        kernels = [tf.convert_to_tensor(k) for k in self._kernels()]
        channels = self._output_channels
        bias = tf.cast(self.bias, tf.float32) if self.use_bias else tf.zeros([channels])
        single = len(kernels) == 1
        if not self.batch_norm:
            return (kernels[0] if single else tuple(kernels)), bias
        if training:
            if inputs is None:
                raise ValueError(f"{self.name}: folded_weights(training=True) needs the `inputs` "
                                 "spike train whose batch statistics are folded in.")
            counts = tf.reduce_sum(tf.cast(inputs, kernels[0].dtype), axis=1)
            u = tf.cast(self._linear(counts, *kernels), tf.float32) + bias
            mean, variance = tf.nn.moments(u, axes=list(range(u.shape.rank - 1)))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        scale = self.gamma * tf.math.rsqrt(variance + self.epsilon)
        folded = self._fold(kernels, scale)
        return (folded[0] if single else tuple(folded)), (bias - mean) * scale + self.beta
