"""The tandem couplings: SNN values forward, ANN gradients backward (method §3).

Two small custom-gradient functions carry the whole learning rule:

* :func:`couple_spikes_to_potential` returns the SNN spike train unchanged and sends
  its gradient, read as a rate, to the ANN's membrane potential through the
  (bounded) ReLU.
* :func:`shared_conv2d` / :func:`shared_dense` return the ANN's aggregate input
  ``W * c_in`` computed from the SNN's per-step products (``sum_t W * s(t) ==
  W * sum_t s(t)`` by linearity), so the coupled ANN costs no extra forward
  convolution, while the gradient is that of ``W * c_in``.

Neither keeps anything of the T steps for the backward pass.
"""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf

from tandem_keras import surrogates

#: String aliases of the built-in surrogates (:mod:`tandem_keras.surrogates`).
SURROGATES = tuple(surrogates.ALIASES)


def couple_spikes_to_potential(
    spikes: tf.Tensor, potential: tf.Tensor, threshold: float, surrogate: Any = "bounded_relu"
) -> tf.Tensor:
    """Forward: ``spikes``. Backward: the gradient of the coupled ANN activation.

    The ANN activation is ``a = clip(V_f / theta, 0, T)`` (``surrogate="bounded_relu"``)
    or ``a = max(V_f / theta, 0)`` (``"relu"``). The spike train is read as a rate,
    ``d s(t) / d a = 1/T`` for every t, so::

        grad_V_f = (sum_t grad_s(t) / T) * (1/theta) * [0 < V_f < T * theta]

    (upper bound dropped for ``"relu"``; in general ``* a'(V_f)`` of any
    :class:`tandem_keras.surrogates.Surrogate`). No gradient flows to ``spikes``.

    Args:
      spikes: ``[batch, T, ...]`` spike train (any float dtype).
      potential: ``[batch, ...]`` free aggregate membrane potential ``V_f`` of the ANN.
      threshold: ``theta``.
      surrogate: ``"bounded_relu"``, ``"relu"`` or a ``tk.surrogates.Surrogate``.
    """
    time_steps = spikes.shape[1]
    derivative = surrogates.get(surrogate).derivative

    @tf.custom_gradient
    def _couple(spike_train, v_f):
        def grad(upstream):
            with tf.name_scope("coupling_backward"):
                rate_grad = tf.reduce_sum(tf.cast(upstream, tf.float32), axis=1) / time_steps
                grad_v = rate_grad * derivative(tf.cast(v_f, tf.float32), threshold, time_steps)
                return None, tf.cast(grad_v, v_f.dtype)

        return tf.identity(spike_train), grad

    return _couple(tf.stop_gradient(spikes), potential)


def time_to_batch(spikes: tf.Tensor) -> tf.Tensor:
    """``[batch, T, ...] -> [batch * T, ...]`` (time folded into the batch)."""
    shape = tf.shape(spikes)
    return tf.reshape(spikes, tf.concat([[-1], shape[2:]], axis=0))


def batch_to_time(tensor: tf.Tensor, time_steps: int) -> tf.Tensor:
    """``[batch * T, ...] -> [batch, T, ...]``."""
    shape = tf.shape(tensor)
    return tf.reshape(tensor, tf.concat([[-1, time_steps], shape[1:]], axis=0))


def shared_conv2d(
    counts: tf.Tensor,
    kernel: tf.Tensor,
    summed_products: tf.Tensor,
    strides: Sequence[int],
    padding: str,
    dilations: Sequence[int],
) -> tf.Tensor:
    """Value ``summed_products`` (== ``conv2d(counts, kernel)``), gradient of the conv.

    ``summed_products`` must be ``sum_t conv2d(s(t), kernel)`` with
    ``counts = sum_t s(t)``: equal to ``conv2d(counts, kernel)`` by linearity.
    The backward pass is the convolution's own (input and filter backprop on the
    counts), so the coupled ANN's forward convolution is never run.
    """
    strides4 = [1, strides[0], strides[1], 1]
    dilations4 = [1, dilations[0], dilations[1], 1]
    pad = padding.upper()

    @tf.custom_gradient
    def _conv(c_in, w):
        def grad(upstream):
            with tf.name_scope("coupled_ann_backward"):
                upstream = tf.cast(upstream, c_in.dtype)
                grad_c = tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=tf.shape(c_in), filter=w, out_backprop=upstream,
                    strides=strides4, padding=pad, dilations=dilations4)
                grad_w = tf.raw_ops.Conv2DBackpropFilter(
                    input=c_in, filter_sizes=tf.shape(w), out_backprop=upstream,
                    strides=strides4, padding=pad, dilations=dilations4)
                return grad_c, grad_w

        return tf.identity(summed_products), grad

    return _conv(counts, kernel)


def shared_dense(counts: tf.Tensor, kernel: tf.Tensor, summed_products: tf.Tensor) -> tf.Tensor:
    """Dense analogue of :func:`shared_conv2d`: value ``summed_products`` (== ``counts @ kernel``)."""

    @tf.custom_gradient
    def _dense(c_in, w):
        def grad(upstream):
            with tf.name_scope("coupled_ann_backward"):
                upstream = tf.cast(upstream, c_in.dtype)
                return (tf.matmul(upstream, w, transpose_b=True),
                        tf.matmul(c_in, upstream, transpose_a=True))

        return tf.identity(summed_products), grad

    return _dense(counts, kernel)
