"""The weights and the fused batch normalization of a tandem layer (method §3).

``W' = W g``, ``b' = (b - mu) g + beta``, ``g = gamma / sqrt(var + eps)``: batch statistics in
training, moving statistics (momentum, Keras's names) in inference. A mixin of
:class:`tandem_keras.layers.tandem_layers.TandemLayer`; a layer says how its kernel is
shaped (``_kernel_shape``), how many channels it outputs (``_channels``), how it is applied
(``_apply_kernel``) and how the scale folds into it (``_fold_kernel``).
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

_INIT_KEYS = ("kernel_initializer", "bias_initializer", "gamma_initializer", "beta_initializer",
              "moving_mean_initializer", "moving_variance_initializer")
_REG_KEYS = ("kernel_regularizer", "bias_regularizer", "gamma_regularizer", "beta_regularizer")
_CONSTRAINT_KEYS = ("kernel_constraint", "bias_constraint")


class FoldedBatchNorm:
    """Kernel, bias and BN weights, ``_normalize`` and ``folded_weights``."""

    def _kernel_shape(self, input_dim: int) -> tuple:
        raise NotImplementedError

    def _channels(self, input_dim: int) -> int:
        """Output channels (bias and BN size): the kernel's last axis by default."""
        return self._kernel_shape(input_dim)[-1]

    def _fold_kernel(self, kernel: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
        """``W g``: the per-output-channel scale folded into the kernel."""
        return kernel * scale

    def _build_weights(self, input_dim: int) -> None:
        self.kernel = self.add_weight(
            name="kernel", shape=self._kernel_shape(input_dim),
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint)
        channels = (self._channels(input_dim),)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=channels, initializer=self.bias_initializer,
                regularizer=self.bias_regularizer, constraint=self.bias_constraint, autocast=False)
        if self.batch_norm:
            self.gamma = self.add_weight(name="gamma", shape=channels, initializer=self.gamma_initializer,
                                         regularizer=self.gamma_regularizer, autocast=False)
            self.beta = self.add_weight(name="beta", shape=channels, initializer=self.beta_initializer,
                                        regularizer=self.beta_regularizer, autocast=False)
            # aggregation="mean": under a tf.distribute strategy every replica's update is
            # averaged into one value (else each replica keeps its own statistics).
            self.moving_mean = self.add_weight(name="moving_mean", shape=channels, trainable=False,
                                               initializer=self.moving_mean_initializer, autocast=False,
                                               aggregation="mean")
            self.moving_variance = self.add_weight(
                name="moving_variance", shape=channels, trainable=False,
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
        if training:
            mean, variance = tf.nn.moments(u, axes=axes)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            mean = tf.convert_to_tensor(self.moving_mean)
            variance = tf.convert_to_tensor(self.moving_variance)
        scale = tf.convert_to_tensor(self.gamma) * tf.math.rsqrt(variance + self.epsilon)
        v_f = (u - mean) * scale + self.beta
        bias_term = -mean if bias is None else bias - mean
        folded_bias = bias_term * scale + self.beta
        return v_f, scale, folded_bias

    def folded_weights(self, training: bool = False, inputs: Optional[tf.Tensor] = None):
        """The BN-folded ``(kernel, bias)`` the SNN runs with.

        ``W' = W * g``, ``b' = (b - mu) * g + beta``, ``g = gamma / sqrt(var + eps)``
        with the moving statistics (``training=False``), or with the batch statistics
        of ``inputs`` (a spike train) when ``training=True``. Without BN:
        ``(W, b)``. Reading does not update the moving statistics.

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
        kernel = tf.convert_to_tensor(self.kernel)
        channels = int(self.moving_mean.shape[0]) if self.batch_norm else self._channels(kernel.shape[-2])
        bias = tf.cast(self.bias, tf.float32) if self.use_bias else tf.zeros([channels])
        if not self.batch_norm:
            return kernel, bias
        if training:
            if inputs is None:
                raise ValueError(f"{self.name}: folded_weights(training=True) needs the `inputs` "
                                 "spike train whose batch statistics are folded in.")
            counts = tf.reduce_sum(tf.cast(inputs, kernel.dtype), axis=1)
            u = tf.cast(self._apply_kernel(counts, kernel), tf.float32) + bias
            mean, variance = tf.nn.moments(u, axes=list(range(u.shape.rank - 1)))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        scale = self.gamma * tf.math.rsqrt(variance + self.epsilon)
        return self._fold_kernel(kernel, scale), (bias - mean) * scale + self.beta

