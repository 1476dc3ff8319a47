"""The tandem couplings: SNN values forward, ANN gradients backward (method §3).

Three small custom-gradient functions carry the whole learning rule:

* :func:`couple_spikes_to_potential` returns the SNN spike train unchanged and sends
  its gradient, read as a rate, to the ANN's membrane potential through the coupled
  ANN's activation (the surrogate);
* :func:`couple_train_to_value` returns any train (a current, a pooled train) unchanged
  and sends the rate reading of its gradient to the ANN value it stands for;
* :func:`shared_linear` returns the ANN's aggregate input ``L(c_in)`` of any linear map
  ``L`` (convolution, matrix product, depthwise convolution, pooling) computed from the
  SNN's per-step products (``sum_t L(s(t)) == L(sum_t s(t))`` by linearity), so the
  coupled ANN costs no extra forward op, while the gradient is the vector-Jacobian
  product of ``L`` at the counts: no hand-written backward per operation.

None keeps anything of the T steps for the backward pass.

The ANN value of a train (its time-sum: a spike count, a current's ``V``) is what the next
layer's coupled ANN reads. A library layer attaches it to the train it returns
(:func:`attach_ann_value`), its gradient coupled directly to the producer's ANN, and the
next library layer reads it (:func:`ann_value`) instead of summing the train: the same
value, and no ``[batch, T, ...]`` gradient is formed between layers (it would be the count's
gradient broadcast to every step, then averaged again by the producer: method §3's rate
reading). Any other consumer of the train (a Keras layer, a user's loss) sums it and
reaches the producer through the train's own coupling, with the same gradient. The
gradients of the weights and of the model's inputs are unchanged; only a gradient taken
with respect to an intermediate train that a library layer reads (``tape.watch`` on a
layer's output) is not formed: watch ``tf.identity(train)`` and feed that on (a new tensor,
summed as any other), or read the train with your own ops.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import tensorflow as tf

from tandem_keras import surrogates


def couple_spikes_to_potential(
    spikes: tf.Tensor, potential: tf.Tensor, threshold: float, surrogate: Any = "bounded_relu",
    offset: float = 0.0,
) -> tf.Tensor:
    """Forward: ``spikes``. Backward: the gradient of the coupled ANN activation.

    The ANN activation is ``a = clip(V_f / theta + offset, 0, T)``
    (``surrogate="bounded_relu"``; ``offset`` is the neuron's initial potential, a fraction
    of theta) or ``a = max(V_f / theta + offset, 0)`` (``"relu"``). The spike train is read
    as a rate, ``d s(t) / d a = 1/T`` for every t, so::

        grad_V_f = (sum_t grad_s(t) / T) * a'(V_f + offset * theta)

    with ``a'`` the derivative of any :class:`tandem_keras.surrogates.Surrogate`
    (``[0 < V_f + offset theta < T theta] / theta`` for the bounded ReLU). No gradient flows
    to ``spikes``.

    Args:
      spikes: ``[batch, T, ...]`` spike train (any float dtype).
      potential: ``[batch, ...]`` free aggregate membrane potential ``V_f`` of the ANN.
      threshold: ``theta``.
      surrogate: ``"bounded_relu"``, ``"relu"`` or a ``tk.surrogates.Surrogate``.
      offset: the shift of the activation, in units of theta (``initial_potential``).
    """
    time_steps = spikes.shape[1]
    derivative = surrogates.get(surrogate).derivative

    @tf.custom_gradient
    def _couple(spike_train, v_f):
        def grad(upstream):
            with tf.name_scope("coupling_backward"):
                rate_grad = tf.reduce_sum(tf.cast(upstream, tf.float32), axis=1) / time_steps
                v = tf.cast(v_f, tf.float32)
                if offset:
                    v = v + offset * threshold
                grad_v = rate_grad * derivative(v, threshold, time_steps)
                return None, tf.cast(grad_v, v_f.dtype)

        return tf.identity(spike_train), grad

    return _couple(tf.stop_gradient(spikes), potential)


def couple_count_to_potential(count: tf.Tensor, potential: tf.Tensor, threshold: float,
                              surrogate: Any = "bounded_relu", offset: float = 0.0,
                              time_steps: int = 1) -> tf.Tensor:
    """Forward: ``count`` (the SNN's spike count). Backward: the coupled ANN activation's,
    ``grad_V_f = grad_c * a'(V_f + offset theta)`` (:func:`couple_spikes_to_potential` with
    the count's gradient, which the rate reading gives every step)."""
    derivative = surrogates.get(surrogate).derivative

    @tf.custom_gradient
    def _couple(c, v_f):
        def grad(upstream):
            with tf.name_scope("coupling_backward"):
                v = tf.cast(v_f, tf.float32)
                if offset:
                    v = v + offset * threshold
                grad_v = tf.cast(upstream, tf.float32) * derivative(v, threshold, time_steps)
                return None, tf.cast(grad_v, v_f.dtype)

        return tf.identity(c), grad

    return _couple(tf.stop_gradient(count), potential)


def couple_value(value: tf.Tensor, ann: tf.Tensor) -> tf.Tensor:
    """Forward: ``value``. Backward: its gradient passed unchanged to ``ann`` (same shape)."""

    @tf.custom_gradient
    def _couple(x, a):
        def grad(upstream):
            return None, tf.cast(upstream, a.dtype)

        return tf.identity(x), grad

    return _couple(tf.stop_gradient(value), ann)


_VALUE_TAG = "_tandem_keras_ann_value"


def attach_ann_value(train, value):
    """Attaches ``value`` (``[batch, ...]``), the ANN value of ``train`` (``[batch, T, ...]``),
    to the tensor ``train``; returns ``train``. Tensors that take no attributes are left as
    they are (their consumers sum them)."""
    try:
        setattr(train, _VALUE_TAG, value)
    except (AttributeError, TypeError):
        pass
    return train


def attached_value(train):
    """The ANN value attached to ``train``, or None."""
    return getattr(train, _VALUE_TAG, None)


def ann_value(train, dtype=None) -> tf.Tensor:
    """The ANN value of ``train``: the attached one (see the module docstring), else
    ``sum_t train(t)``; cast to ``dtype`` if given."""
    value = attached_value(train)
    if value is None:
        value = tf.reduce_sum(train, axis=1)
    return value if dtype is None or value.dtype == tf.as_dtype(dtype) else tf.cast(value, dtype)


def couple_train_to_value(train: tf.Tensor, value: tf.Tensor) -> tf.Tensor:
    """Forward: ``train`` ``[batch, T, ...]``. Backward: ``grad_value = mean_t grad_train(t)``.

    ``value`` ``[batch, ...]`` is the ANN value the train stands for (its time-sum for a
    current or a pooled train, ``V = sum_t z(t)``); the gradient is the rate reading of
    method §3, as for spikes. No gradient flows to ``train``.
    """
    time_steps = train.shape[1]

    @tf.custom_gradient
    def _couple(x, v):
        def grad(upstream):
            with tf.name_scope("coupling_backward"):
                mean = tf.reduce_sum(tf.cast(upstream, tf.float32), axis=1) / time_steps
                return None, tf.cast(mean, v.dtype)

        return tf.identity(x), grad

    return _couple(tf.stop_gradient(train), value)


def shared_linear(op: Callable[..., tf.Tensor], summed_products: tf.Tensor,
                  inputs: Sequence[tf.Tensor]) -> tf.Tensor:
    """Value ``summed_products`` (``== op(*inputs)``), gradient the VJP of ``op`` at ``inputs``.

    ``op`` is linear in its first argument (the counts ``c_in``) and ``summed_products`` is
    ``sum_t op(s(t), *rest)`` with ``c_in = sum_t s(t)``: by linearity the same value as
    ``op(c_in, *rest)``, which is never computed forward. The backward pass differentiates
    ``op`` at ``inputs`` (``tf.GradientTape`` inside the custom gradient): for a
    convolution that is its input and filter backprop on the counts. Inside a
    ``tf.function`` the recomputed forward op has no consumer (the gradients of a
    convolution, a matrix product or an average pooling do not read the forward output)
    and grappler prunes it (checked in ``tests/tandem_keras/test_coupling.py``).

    Example:
      >>> import tensorflow as tf
      >>> s = tf.constant([[[1.0, 0.0]], [[1.0, 1.0]]])          # [T=2, batch=1, 2]
      >>> w = tf.constant([[2.0], [3.0]])
      >>> c = tf.reduce_sum(s, 0)
      >>> with tf.GradientTape() as tape:
      ...     tape.watch(w)
      ...     u = shared_linear(tf.matmul, tf.matmul(s[0], w) + tf.matmul(s[1], w), [c, w])
      >>> u.numpy().tolist(), tape.gradient(u, w).numpy().tolist()
      ([[7.0]], [[2.0], [1.0]])
    """
    inputs = list(inputs)

    @tf.custom_gradient
    def _shared(*args):
        def grad(upstream):
            with tf.name_scope("coupled_ann_backward"):
                with tf.GradientTape() as tape:
                    tape.watch(args)
                    recomputed = op(*args)
                return tape.gradient(recomputed, args,
                                     output_gradients=tf.cast(upstream, recomputed.dtype))

        return tf.identity(summed_products), grad

    return _shared(*inputs)


def time_to_batch(spikes: tf.Tensor) -> tf.Tensor:
    """``[batch, T, ...] -> [batch * T, ...]`` (time folded into the batch)."""
    shape = tf.shape(spikes)
    return tf.reshape(spikes, tf.concat([[-1], shape[2:]], axis=0))


def batch_to_time(tensor: tf.Tensor, time_steps: int) -> tf.Tensor:
    """``[batch * T, ...] -> [batch, T, ...]``."""
    shape = tf.shape(tensor)
    return tf.reshape(tensor, tf.concat([[-1, time_steps], shape[1:]], axis=0))


def per_step(op: Callable[[tf.Tensor], tf.Tensor], train: tf.Tensor, time_steps=None) -> tf.Tensor:
    """``op`` applied to every step of ``train`` ``[batch, T, ...]`` as one call, time folded
    into the batch (the fused forward). ``time_steps``: T if the input's is not static."""
    if time_steps is None:
        time_steps = train.shape[1] if train.shape[1] is not None else tf.shape(train)[1]
    return batch_to_time(op(time_to_batch(train)), time_steps)
