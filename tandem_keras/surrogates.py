"""The coupled ANN's activation, as the gradient of a tandem layer: serializable objects.

A tandem layer's forward pass is always the exact IF SNN. Its backward pass reads the spike
train as a rate and sends the gradient to the free aggregate membrane potential ``V_f``
through the derivative of the coupled ANN's activation ``a(V_f)``::

    grad_V_f = (sum_t grad_s(t) / T) * a'(V_f)

A :class:`Surrogate` is that ``a'``. Built in, with string aliases (as Keras activations
and larq quantizers):

* ``"bounded_relu"`` (:class:`BoundedReLU`, the paper's): ``a = clip(V_f / theta, 0, T)``,
  ``a' = [0 < V_f < T theta] / theta``;
* ``"relu"`` (:class:`ReLU`): ``a = max(V_f / theta, 0)``, ``a' = [V_f > 0] / theta``;
* ``"straight_through"`` (:class:`StraightThrough`): ``a = V_f / theta``, ``a' = 1 / theta``.

A user's own is a subclass with :meth:`Surrogate.derivative`, registered with
``keras.saving.register_keras_serializable`` so that models using it round-trip through
``.keras`` files.

Example:
    >>> import keras, tensorflow as tf, tandem_keras as tk
    >>> @keras.saving.register_keras_serializable(package="my_project")
    ... class Linear(tk.surrogates.Surrogate):
    ...     '''a = V_f / theta everywhere: gradient also for silent and saturated neurons.'''
    ...     def derivative(self, v_f, threshold, time_steps):
    ...         return tf.ones_like(v_f) / threshold
    >>> layer = tk.TandemDense(10, surrogate=Linear())
    >>> type(tk.TandemDense.from_config(layer.get_config()).surrogate).__name__
    'Linear'
    >>> tk.TandemDense(10).get_config()["surrogate"]
    'bounded_relu'
"""

from __future__ import annotations

from typing import Any, Union

import keras
import tensorflow as tf


class Surrogate:
    """Derivative ``a'(V_f)`` of the coupled ANN activation (see the module docstring)."""

    def derivative(self, v_f: tf.Tensor, threshold: float, time_steps: int) -> tf.Tensor:
        """``a'(V_f)``, float32, the shape of ``v_f`` (float32)."""
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Surrogate":
        return cls(**config)

    def __eq__(self, other: Any) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config() or ''})"


@keras.saving.register_keras_serializable(package="tandem_keras")
class BoundedReLU(Surrogate):
    """``a = clip(V_f / theta, 0, T)``: ``a' = [0 < V_f < T theta] / theta`` (the paper's)."""

    def derivative(self, v_f, threshold, time_steps):
        inside = tf.logical_and(v_f > 0.0, v_f < float(time_steps) * threshold)
        return tf.cast(inside, tf.float32) / threshold


@keras.saving.register_keras_serializable(package="tandem_keras")
class ReLU(Surrogate):
    """``a = max(V_f / theta, 0)``: ``a' = [V_f > 0] / theta`` (no upper bound)."""

    def derivative(self, v_f, threshold, time_steps):
        return tf.cast(v_f > 0.0, tf.float32) / threshold


@keras.saving.register_keras_serializable(package="tandem_keras")
class StraightThrough(Surrogate):
    """``a = V_f / theta`` (no clip): ``a' = 1 / theta`` everywhere.

    For the output layer of spike-count decoding (``decode="spike_count_st"``): a silent
    correct class (``V_f <= 0``) and a saturated wrong class (``V_f >= T theta``) still
    receive gradient. The forward pass stays the exact IF SNN.

    Example:
      >>> import tandem_keras as tk
      >>> tk.TandemDense(10, batch_norm=False, surrogate="straight_through").surrogate
      StraightThrough()
    """

    def derivative(self, v_f, threshold, time_steps):
        return tf.ones_like(v_f, tf.float32) / threshold


ALIASES: dict[str, type] = {"bounded_relu": BoundedReLU, "relu": ReLU,
                            "straight_through": StraightThrough}


def get(identifier: Union[str, dict, Surrogate]) -> Surrogate:
    """A :class:`Surrogate` from an alias, a serialized config or an instance.

    Raises:
      ValueError: an unknown alias or an object that is not a surrogate.
    """
    if isinstance(identifier, Surrogate):
        return identifier
    if isinstance(identifier, str):
        if identifier not in ALIASES:
            raise ValueError(f"unknown surrogate {identifier!r}; expected one of "
                             f"{', '.join(map(repr, ALIASES))} or a tk.surrogates.Surrogate")
        return ALIASES[identifier]()
    if isinstance(identifier, dict):
        obj = keras.saving.deserialize_keras_object(identifier)
        if isinstance(obj, Surrogate):
            return obj
    raise ValueError(f"surrogate must be one of {', '.join(map(repr, ALIASES))} or a "
                     f"tk.surrogates.Surrogate, got {identifier!r}")


def serialize(surrogate: Surrogate) -> Union[str, dict]:
    """The alias of a built-in surrogate with default config, else Keras's serialization."""
    for alias, cls in ALIASES.items():
        if type(surrogate) is cls and not surrogate.get_config():
            return alias
    return keras.saving.serialize_keras_object(surrogate)
