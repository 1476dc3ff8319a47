"""Spiking neurons as serializable objects (``"if"``, ``"lif"``), and their dynamics.

A spike train is a float tensor ``[batch, time, ...]`` of 0.0 / 1.0 (method §1). Every
spiking layer takes ``neuron=`` (an alias, a config or an object, as ``surrogate=``) and
keeps ``threshold`` theta as its own argument. Both neurons reset by subtraction and start
from ``V(0) = initial_potential * theta`` (a fraction of theta; ``0.5`` turns the count's
floor into rounding, as QCFS), ``s(0) = 0``, for ``t = 1 .. T`` (method §3):

* ``"if"`` (:class:`IF`, the paper's, the default): ``V(t) = V(t-1) + z(t) - theta s(t-1)``;
* ``"lif"`` (:class:`LIF`): a leak ``beta`` per step, applied after the reset::

      V(t) = beta * (V(t-1) - theta s(t-1)) + z(t),   s(t) = [V(t) >= theta]

  which is NIR's ``LIF`` (``tau dv/dt = v_leak - v + R I``, reset at the spike) under
  forward Euler with a step of one time step: ``tau = 1 / (1 - beta)`` steps, ``R = tau``,
  ``v_leak = 0``, ``v_threshold = theta`` (method §3).

The tandem gradient of either neuron is the coupled ANN's (method §3): the shifted
bounded ReLU ``a = clip(V_f / theta + r, 0, T)``; the ``"quantized"`` mode forwards
``clip(floor(V_f / theta + r), 0, T)``. The offset ``r`` is ``rounding`` (default: the
``initial_potential`` ``v0``); the part ``r - v0`` not in ``V(0)`` arrives as a constant
current ``(r - v0) theta / T`` at every step, so ``IF(initial_potential=0.25, rounding=0.5)``
rounds like ``IF(initial_potential=0.5)`` but fires its first spikes later (method §10).
For LIF both are the IF rate, an approximation (method §3).

With ``negative_spikes=True`` (either neuron) a neuron whose net count is positive emits
``s(t) = -1`` when ``V(t) < 0`` (the reset adds theta back): it takes back spikes an early
surplus fired, and its net count is the quantized count whenever ``V(T)`` ends in
``[0, theta)`` (method §3.6). The coupled ANN is unchanged; SynOps count every spike.

(A little over the project's ~300 lines: the neuron objects and the tensor functions that
run them over the time axis are one subject, read together.)

Example:
    >>> import tandem_keras as tk
    >>> tk.neurons.get("lif")
    LIF({'beta': 0.9, 'initial_potential': 0.0})
    >>> tk.neurons.serialize(tk.neurons.IF())
    'if'
    >>> tk.TandemDense(4, neuron=tk.neurons.IF(initial_potential=0.5)).neuron.initial_potential
    0.5
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Union

import keras
import numpy as np
import tensorflow as tf


class Neuron:
    """A spiking neuron: its exact forward dynamics and its coupled ANN (see the module)."""

    def __init__(self, initial_potential: float = 0.0, rounding: Optional[float] = None,
                 negative_spikes: bool = False) -> None:
        owner = type(self).__name__
        if not isinstance(negative_spikes, bool):
            raise ValueError(f"{owner}: negative_spikes must be True or False, got {negative_spikes!r}.")
        self.negative_spikes = negative_spikes
        self.initial_potential = _fraction(initial_potential, owner)
        self.rounding = self.initial_potential if rounding is None else _fraction(rounding, owner, "rounding")
        if self.rounding < self.initial_potential:
            raise ValueError(f"{owner}: rounding ({self.rounding}) must be at least "
                             f"initial_potential ({self.initial_potential}).")

    def rounding_current(self, threshold: float, time_steps: int) -> float:
        """``(rounding - initial_potential) theta / T``: the part of the offset not in ``V(0)``,
        spread over the window as a constant current (0 when there is none)."""
        return (self.rounding - self.initial_potential) * float(threshold) / time_steps

    def _extra_current(self, threshold: float, time_steps: int) -> Optional[tf.Tensor]:
        """:meth:`rounding_current` as a float32 constant, None when it is 0."""
        current = self.rounding_current(threshold, time_steps)
        return tf.constant(current, tf.float32) if current else None

    # ---------------------------------------------------------------- dynamics
    def step(self, potential: tf.Tensor, current: tf.Tensor) -> tf.Tensor:
        """``V(t)`` from the potential after the previous reset and the current ``z(t)``."""
        raise NotImplementedError

    def start(self, current: tf.Tensor) -> tf.Tensor:
        """``V(1)`` from ``V(0) = 0``: ``step(0, z(1))`` (a neuron whose step adds the current
        to a leaked potential returns ``z(1)`` itself, without an op)."""
        return self.step(tf.zeros_like(current), current)

    def fire(self, current_at: Callable[[int], tf.Tensor], time_steps: int, threshold: float,
             out_dtype: Any) -> tf.Tensor:
        """The spike train ``s(1..T)`` (``out_dtype``) for the float32 currents ``current_at(t)``.

        Unrolled over the static time axis (XLA and grappler fuse it); spikes stay booleans
        until the end and the reset ``V - theta s`` is ``where(s, V - theta, V)`` (same values).
        """
        theta = tf.constant(threshold, tf.float32)
        extra = self._extra_current(threshold, time_steps)
        potential = None
        if self.initial_potential:
            potential = tf.constant(self.initial_potential * threshold, tf.float32)
        spikes, count = [], None
        with tf.name_scope(f"{type(self).__name__.lower()}_neurons"):
            for t in range(time_steps):
                z = current_at(t) if extra is None else current_at(t) + extra
                potential = self.start(z) if potential is None else self.step(potential, z)
                if self.negative_spikes:
                    spike, count = _signed_spike(potential, theta, count)
                    potential = potential - theta * spike
                else:
                    spike = potential >= theta
                    potential = tf.where(spike, potential - theta, potential)
                spikes.append(spike)
            if self.negative_spikes:
                return tf.cast(tf.stack(spikes, axis=1), out_dtype)
            return _bool_to_spikes(tf.stack(spikes, axis=1), out_dtype)

    def fire_bptt(self, current: tf.Tensor, threshold: float) -> tf.Tensor:
        """:meth:`fire` differentiable through time (boxcar surrogate, width theta); the
        BPTT baseline keeps every step's potential for the backward pass."""
        time_steps = _static_time_steps(current, "fire_bptt")
        z = tf.cast(current, tf.float32)
        extra = self._extra_current(threshold, time_steps)
        if extra is not None:
            z = z + extra
        potential = tf.fill(tf.shape(z[:, 0]), self.initial_potential * threshold)
        spikes = []
        count = tf.zeros_like(potential) if self.negative_spikes else None
        for t in range(time_steps):
            potential = self.step(potential, z[:, t])
            spike = heaviside_with_surrogate(potential - threshold, float(threshold))
            if self.negative_spikes:
                spike = spike - negative_spike_with_surrogate(
                    potential, tf.stop_gradient(count) > 0.0, float(threshold))
                count = count + spike
            potential = potential - threshold * spike
            spikes.append(spike)
        return tf.cast(tf.stack(spikes, axis=1), current.dtype)

    # ------------------------------------------------------------ coupled ANN
    def quantized_count(self, potential: tf.Tensor, threshold: float, time_steps: int) -> tf.Tensor:
        """The quantized ANN's count ``clip(floor(V_f / theta + r), 0, T)`` (Eq. 11, shifted by
        the ``rounding`` ``r``)."""
        if not self.rounding:
            return bounded_quantized_relu(potential, threshold, time_steps)
        shifted = tf.floor(potential / threshold + self.rounding)
        return tf.clip_by_value(shifted, 0.0, float(time_steps))

    # -------------------------------------------------------------------- NIR
    def nir_node(self, nir: Any, threshold: float, shape: tuple) -> Any:
        """The NIR node of a layer of these neurons (channels-first ``shape``), for
        :func:`tandem_keras.export_nir`. Raises ``NotImplementedError`` if NIR has none."""
        raise NotImplementedError(f"NIR has no node for the neuron {self!r}")

    def _check_nir(self) -> None:
        if self.negative_spikes:
            raise NotImplementedError(f"NIR has no neuron with negative spikes ({self!r})")

    def _nir_metadata(self, threshold: float) -> dict:
        """``reset = "subtract"`` (NIR 1.0 resets *to* ``v_reset``) and ``v_initial`` (NIR
        1.0's neurons have no initial state: a simulator must start the potential there)."""
        metadata: dict = {"reset": "subtract"}
        if self.initial_potential:
            metadata["v_initial"] = float(self.initial_potential) * float(threshold)
        return metadata

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict:
        config: dict = {"initial_potential": self.initial_potential}
        if self.rounding != self.initial_potential:
            config["rounding"] = self.rounding
        if self.negative_spikes:
            config["negative_spikes"] = True
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Neuron":
        return cls(**config)

    def __eq__(self, other: Any) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


@keras.saving.register_keras_serializable(package="tandem_keras")
class IF(Neuron):
    """Integrate-and-fire, reset by subtraction (the paper's, Eq. 2-3; alias ``"if"``).

    ``V(t) = V(t-1) + z(t) - theta s(t-1)``, ``V(0) = initial_potential * theta``;
    ``s(t) = [V(t) >= theta]``, and with ``negative_spikes=True`` also ``s(t) = -1`` when
    ``V(t) < 0`` and ``sum_{u<t} s(u) > 0`` (method §3.6). Gradient (tandem rule): the
    coupled ANN's, ``a = clip(V_f / theta + rounding, 0, T)``, whatever the spikes.

    Example:
      >>> import tensorflow as tf
      >>> z = tf.constant([[[1.2], [-0.5], [0.0]]])     # an early surplus, then inhibition
      >>> IF().fire(lambda t: z[:, t], 3, 1.0, tf.float32)[0, :, 0].numpy().tolist()
      [1.0, 0.0, 0.0]
      >>> IF(negative_spikes=True).fire(lambda t: z[:, t], 3, 1.0, tf.float32)[0, :, 0].numpy().tolist()
      [1.0, -1.0, 0.0]
    """

    def step(self, potential, current):
        return potential + current

    def start(self, current):
        return current

    def nir_node(self, nir, threshold, shape):
        """``IF(r=1, v_threshold=theta, v_reset=0)``."""
        self._check_nir()
        full = lambda value: np.full(shape, value, np.float32)  # noqa: E731
        return nir.IF(r=full(1.0), v_threshold=full(threshold), v_reset=full(0.0),
                      metadata=self._nir_metadata(threshold))


@keras.saving.register_keras_serializable(package="tandem_keras")
class LIF(Neuron):
    """Leaky integrate-and-fire, reset by subtraction, leak after the reset (alias ``"lif"``).

    ``V(t) = beta (V(t-1) - theta s(t-1)) + z(t)``, ``V(0) = initial_potential * theta``.
    ``beta`` in ``(0, 1]`` (1 is the IF neuron); NIR: ``nir.LIF`` with ``tau = 1/(1-beta)``
    time steps, ``r = tau``, ``v_leak = 0`` (forward Euler, one step per time step).

    Example:
      >>> import tensorflow as tf
      >>> z = tf.constant([[[0.5], [0.5], [0.5]]])       # V: 0.5, 0.75, 0.875 (IF: 0.5, 1.0, 0.5)
      >>> LIF(beta=0.5).fire(lambda t: z[:, t], 3, 1.0, tf.float32)[0, :, 0].numpy().tolist()
      [0.0, 0.0, 0.0]
      >>> IF().fire(lambda t: z[:, t], 3, 1.0, tf.float32)[0, :, 0].numpy().tolist()
      [0.0, 1.0, 0.0]
    """

    def __init__(self, beta: float = 0.9, initial_potential: float = 0.0,
                 rounding: Optional[float] = None, negative_spikes: bool = False) -> None:
        super().__init__(initial_potential, rounding, negative_spikes)
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 < beta <= 1.0:
            raise ValueError(f"LIF: beta (the leak per step) must be a number in (0, 1], got {beta!r}.")
        self.beta = float(beta)

    def step(self, potential, current):
        return self.beta * potential + current

    def start(self, current):
        return current

    def nir_node(self, nir, threshold, shape):
        """``LIF(tau, r=tau, v_leak=0, v_threshold=theta)``, ``tau = 1/(1-beta)`` time steps
        (NIR's ``tau dv/dt = v_leak - v + r I`` under forward Euler, one step per time
        step, is ``v(t) = beta v(t-1) + I(t)``); ``beta = 1`` is the IF node."""
        self._check_nir()
        if self.beta == 1.0:
            return IF.nir_node(self, nir, threshold, shape)
        tau = 1.0 / (1.0 - self.beta)
        full = lambda value: np.full(shape, value, np.float32)  # noqa: E731
        metadata = dict(self._nir_metadata(threshold), tau_unit="time step")
        return nir.LIF(tau=full(tau), r=full(tau), v_leak=full(0.0), v_threshold=full(threshold),
                       v_reset=full(0.0), metadata=metadata)

    def get_config(self) -> dict:
        return {"beta": self.beta, **super().get_config()}


ALIASES: dict[str, type] = {"if": IF, "lif": LIF}


def get(identifier: Union[str, dict, Neuron]) -> Neuron:
    """A :class:`Neuron` from an alias (``"if"``, ``"lif"``), a serialized config or an instance.

    Raises:
      ValueError: an unknown alias or an object that is not a neuron.
    """
    if isinstance(identifier, Neuron):
        return identifier
    if isinstance(identifier, str):
        if identifier not in ALIASES:
            raise ValueError(f"unknown neuron {identifier!r}; expected one of "
                             f"{', '.join(map(repr, ALIASES))} or a tk.neurons.Neuron")
        return ALIASES[identifier]()
    if isinstance(identifier, dict):
        obj = keras.saving.deserialize_keras_object(identifier)
        if isinstance(obj, Neuron):
            return obj
    raise ValueError(f"neuron must be one of {', '.join(map(repr, ALIASES))} or a "
                     f"tk.neurons.Neuron, got {identifier!r}")


def serialize(neuron: Optional[Neuron]) -> Union[str, dict, None]:
    """The alias of a built-in neuron with its default config, else Keras's serialization."""
    if neuron is None:
        return None
    for alias, cls in ALIASES.items():
        if type(neuron) is cls and neuron == cls():
            return alias
    return keras.saving.serialize_keras_object(neuron)


def _fraction(value: Any, owner: str, name: str = "initial_potential") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and 0.0 <= value < 1.0):
        meaning = ("V(0) = initial_potential * theta" if name == "initial_potential"
                   else "the count is floor(V_f / theta + rounding)")
        raise ValueError(f"{owner}: {name} (a fraction of the threshold, {meaning}) must be in "
                         f"[0, 1), got {value!r}.")
    return float(value)


def _static_time_steps(tensor: tf.Tensor, what: str) -> int:
    if tensor.shape[1] is None:
        raise ValueError(f"{what} needs a static time axis (axis 1).")
    return int(tensor.shape[1])


# ------------------------------------------------------------------ tensor functions
def integrate_and_fire(current: tf.Tensor, threshold: float = 1.0,
                       neuron: Optional[Neuron] = None) -> tf.Tensor:
    """Runs IF neurons (or ``neuron``) with reset by subtraction on a current over time.

    For ``t = 1 .. T`` with ``V(0) = 0`` and ``s(0) = 0`` (paper Eq. 2-3)::

        V(t) = V(t-1) + z(t) - threshold * s(t-1)
        s(t) = 1 if V(t) >= threshold else 0

    The recurrence runs in float32 whatever the dtype of ``current`` (membrane
    potentials need the precision; spikes are exact in any float dtype).

    Args:
      current: ``[batch, time, ...]`` input current ``z(t)``; static time axis.
      threshold: firing threshold (> 0).
      neuron: a :class:`Neuron` (default ``IF()``).

    Returns:
      The spike train ``s(1..T)``, same shape and dtype as ``current``.

    Example:
      >>> z = tf.constant([[[0.6], [0.6], [0.6]]])        # one neuron, T = 3
      >>> integrate_and_fire(z, 1.0)[0, :, 0].numpy().tolist()
      [0.0, 1.0, 0.0]
    """
    time_steps = _static_time_steps(current, "integrate_and_fire")
    with tf.name_scope("integrate_and_fire"):
        return (neuron or IF()).fire(lambda t: tf.cast(current[:, t], tf.float32), time_steps,
                                     threshold, current.dtype)


def integrate_and_fire_affine(products: tf.Tensor, scale, bias, threshold: float = 1.0,
                              out_dtype=None, neuron: Optional[Neuron] = None) -> tf.Tensor:
    """:func:`integrate_and_fire` on the current ``z(t) = products(t) * scale + bias``.

    Same values as ``integrate_and_fire(cast(products, float32) * scale + bias)`` (the same
    float32 operations per element), but the current is formed one step at a time, so no
    ``[batch, T, ...]`` float32 current is materialized.

    Args:
      products: ``[batch, T, ...]`` per-step products ``W s(t)`` (any float dtype).
      scale: ``[channels]`` float32 multiplier (BN scale ``g``), or None for 1.
      bias: ``[channels]`` float32 per-step bias (``b' / T``).
      threshold: firing threshold (> 0).
      out_dtype: dtype of the returned spike train (default: that of ``products``).
      neuron: a :class:`Neuron` (default ``IF()``).

    Example:
      >>> p = tf.constant([[[1.0], [1.0], [1.0]]])
      >>> integrate_and_fire_affine(p, tf.constant([0.5]), tf.constant([0.1]))[0, :, 0].numpy().tolist()
      [0.0, 1.0, 0.0]
    """
    time_steps = _static_time_steps(products, "integrate_and_fire_affine")

    def current(t):
        z = tf.cast(products[:, t], tf.float32)
        if scale is not None:
            z = z * scale
        return z + bias

    with tf.name_scope("integrate_and_fire"):
        return (neuron or IF()).fire(current, time_steps, threshold, out_dtype or products.dtype)


def front_loaded_spikes(count: tf.Tensor, time_steps: int) -> tf.Tensor:
    """Turns integer-valued counts into front-loaded spike trains.

    ``s[t] = 1 if count >= t + 1 else 0`` for ``t = 0 .. T-1`` (method §2, paper
    Eq. 7-8 with ``V(0) = count``), so ``sum_t s[t] == min(count, T)``.

    Example:
      >>> front_loaded_spikes(tf.constant([[2.0]]), 3)[0, :, 0].numpy().tolist()
      [1.0, 1.0, 0.0]
    """
    rank = count.shape.rank
    # A constant, not tf.range: TensorFlow's Range kernel has no float16 version.
    steps = tf.constant(np.arange(1, time_steps + 1).reshape([1, time_steps] + [1] * (rank - 1)),
                        count.dtype)
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


def _signed_spike(potential: tf.Tensor, theta: tf.Tensor, count: Optional[tf.Tensor]):
    """``(s(t), net count after t)`` of a neuron with negative spikes (method §3.6): 1 if
    ``V >= theta``, -1 if ``V < 0`` and the net count so far is positive (None: no spike yet)."""
    fired = potential >= theta
    if count is None:
        spike = tf.where(fired, 1.0, 0.0)
        return spike, spike
    spike = tf.where(fired, 1.0, tf.where(tf.logical_and(potential < 0.0, count > 0.0), -1.0, 0.0))
    return spike, count + spike


def negative_spike_with_surrogate(potential: tf.Tensor, allowed: tf.Tensor, width: float) -> tf.Tensor:
    """``1 if V < 0 and allowed else 0`` (a negative spike, counted positive), with the
    boxcar surrogate of :func:`heaviside_with_surrogate` on ``-V`` (BPTT only)."""

    @tf.custom_gradient
    def _step(v):
        gate = tf.cast(allowed, v.dtype)

        def grad(upstream):
            return -upstream * gate * tf.cast(tf.abs(v) < width / 2.0, upstream.dtype) / width

        return tf.cast(v < 0.0, v.dtype) * gate, grad

    return _step(potential)


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
