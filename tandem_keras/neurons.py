"""Integrate-and-fire dynamics over the time axis, and front-loaded spike encoding.

Pure tensor functions, no Keras state. A spike train is a float tensor
``[batch, time, ...]`` holding 0.0 / 1.0 (method §1); time is axis 1.
"""

from __future__ import annotations

import tensorflow as tf


def integrate_and_fire(current: tf.Tensor, threshold: float = 1.0) -> tf.Tensor:
    """Runs IF neurons with reset by subtraction on an input current over time.

    For ``t = 1 .. T`` with ``V(0) = 0`` and ``s(0) = 0`` (paper Eq. 2-3)::

        V(t) = V(t-1) + z(t) - threshold * s(t-1)
        s(t) = 1 if V(t) >= threshold else 0

    The recurrence runs in float32 whatever the dtype of ``current`` (membrane
    potentials need the precision; spikes are exact in any float dtype) and is
    unrolled over the static time axis, which XLA and grappler fuse well.

    Args:
      current: ``[batch, time, ...]`` input current ``z(t)``; the time axis must
        have a static length.
      threshold: firing threshold (> 0).

    Returns:
      The spike train ``s(1..T)``, same shape and dtype as ``current``.

    Example:
      >>> z = tf.constant([[[0.6], [0.6], [0.6]]])        # one neuron, T = 3
      >>> integrate_and_fire(z, 1.0)[0, :, 0].numpy().tolist()
      [0.0, 1.0, 0.0]
    """
    time_steps = current.shape[1]
    if time_steps is None:
        raise ValueError("integrate_and_fire needs a static time axis (axis 1).")
    with tf.name_scope("integrate_and_fire"):
        return _if_recurrence(lambda t: tf.cast(current[:, t], tf.float32), time_steps,
                              threshold, current.dtype)


def integrate_and_fire_affine(products: tf.Tensor, scale, bias, threshold: float = 1.0,
                              out_dtype=None) -> tf.Tensor:
    """:func:`integrate_and_fire` on the current ``z(t) = products(t) * scale + bias``.

    Same values as ``integrate_and_fire(cast(products, float32) * scale + bias)``
    (the same float32 operations per element), but the current is formed one time
    step at a time, so no ``[batch, T, ...]`` float32 current is materialized: the
    forward's peak memory drops by about two spike-train-sized tensors per layer.

    Args:
      products: ``[batch, T, ...]`` per-step products ``W s(t)`` (any float dtype).
      scale: ``[channels]`` float32 multiplier (BN scale ``g``), or None for 1.
      bias: ``[channels]`` float32 per-step bias (``b' / T``).
      threshold: firing threshold (> 0).
      out_dtype: dtype of the returned spike train (default: that of ``products``).

    Example:
      >>> p = tf.constant([[[1.0], [1.0], [1.0]]])
      >>> integrate_and_fire_affine(p, tf.constant([0.5]), tf.constant([0.1]))[0, :, 0].numpy().tolist()
      [0.0, 1.0, 0.0]
    """
    time_steps = products.shape[1]
    if time_steps is None:
        raise ValueError("integrate_and_fire_affine needs a static time axis (axis 1).")

    def current(t):
        z = tf.cast(products[:, t], tf.float32)
        if scale is not None:
            z = z * scale
        return z + bias

    with tf.name_scope("integrate_and_fire"):
        return _if_recurrence(current, time_steps, threshold, out_dtype or products.dtype)


def _if_recurrence(current_at, time_steps: int, threshold: float, out_dtype) -> tf.Tensor:
    """The unrolled IF loop; ``current_at(t)`` gives the float32 ``z(t)``.

    Spikes are kept as booleans until the end (a quarter of the float32 memory) and
    the reset ``V - theta * s`` is written ``where(s, V - theta, V)`` (identical values).
    """
    theta = tf.constant(threshold, tf.float32)
    potential = None
    spikes = []
    for t in range(time_steps):
        z = current_at(t)
        potential = z if potential is None else potential + z
        spike = potential >= theta
        potential = tf.where(spike, potential - theta, potential)
        spikes.append(spike)
    return _bool_to_spikes(tf.stack(spikes, axis=1), out_dtype)


def front_loaded_spikes(count: tf.Tensor, time_steps: int) -> tf.Tensor:
    """Turns integer-valued counts into front-loaded spike trains.

    ``s[t] = 1 if count >= t + 1 else 0`` for ``t = 0 .. T-1`` (method §2, paper
    Eq. 7-8 with ``V(0) = count``), so ``sum_t s[t] == min(count, T)``.

    Args:
      count: ``[batch, ...]`` non-negative integer-valued float tensor.
      time_steps: ``T``, the length of the returned time axis.

    Returns:
      ``[batch, T, ...]`` spike train of the dtype of ``count``.

    Example:
      >>> front_loaded_spikes(tf.constant([[2.0]]), 3)[0, :, 0].numpy().tolist()
      [1.0, 1.0, 0.0]
    """
    rank = count.shape.rank
    steps = tf.range(1, time_steps + 1, dtype=count.dtype)
    steps = tf.reshape(steps, [1, time_steps] + [1] * (rank - 1))
    return _bool_to_spikes(tf.expand_dims(count, 1) >= steps, count.dtype)


def _bool_to_spikes(fired: tf.Tensor, dtype) -> tf.Tensor:
    """Boolean tensor -> 0.0 / 1.0 in ``dtype``.

    Written as a select, not a ``Cast``: grappler's ReorderCastLikeAndValuePreserving
    pass moves a bool->float ``Cast`` behind a following ``Reshape`` and, when the
    spike train has a second consumer (the count), keeps both casts: two float copies
    of the whole ``[batch, T, ...]`` train (seen in the memory profile).
    """
    return tf.where(fired, tf.ones((), dtype), tf.zeros((), dtype))


def bounded_quantized_relu(potential: tf.Tensor, threshold: float, time_steps: int) -> tf.Tensor:
    """The quantized, bounded ReLU of paper Eq. 11 (forward value only).

    ``a = min(floor(max(V, 0) / threshold), T)``.
    """
    return tf.minimum(tf.floor(tf.nn.relu(potential) / threshold), float(time_steps))


def heaviside_with_surrogate(potential_minus_threshold: tf.Tensor, width: float) -> tf.Tensor:
    """``Theta(x) = 1 if x >= 0 else 0`` with a rectangular surrogate derivative.

    Forward: the Heaviside step of paper Eq. 3. Backward (used only by the BPTT
    baseline): ``dTheta/dx = 1/width`` for ``|x| < width/2``, else 0, the boxcar
    pseudo-derivative of Wu et al. 2018 (STBP).
    """

    @tf.custom_gradient
    def _step(x):
        def grad(upstream):
            box = tf.cast(tf.abs(x) < width / 2.0, upstream.dtype) / width
            return upstream * box

        return tf.cast(x >= 0.0, x.dtype), grad

    return _step(potential_minus_threshold)


def integrate_and_fire_bptt(current: tf.Tensor, threshold: float = 1.0) -> tf.Tensor:
    """The IF neuron of :func:`integrate_and_fire`, differentiable through time.

    Same forward values; gradients flow through every step of the recurrence
    (back-propagation through time) with the boxcar surrogate of
    :func:`heaviside_with_surrogate` (width = threshold), and through the reset.
    Every step's potential is kept for the backward pass, so memory grows with T:
    this is the baseline the tandem rule is compared against.
    """
    time_steps = current.shape[1]
    if time_steps is None:
        raise ValueError("integrate_and_fire_bptt needs a static time axis (axis 1).")
    out_dtype = current.dtype
    z = tf.cast(current, tf.float32)
    potential = tf.zeros_like(z[:, 0])
    spikes = []
    for t in range(time_steps):
        potential = potential + z[:, t]
        spike = heaviside_with_surrogate(potential - threshold, float(threshold))
        potential = potential - threshold * spike
        spikes.append(spike)
    return tf.cast(tf.stack(spikes, axis=1), out_dtype)
