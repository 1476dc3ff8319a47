"""How layers take part in the SynOps accounting, and the energy figures of devices.

The SynOps report (:mod:`tandem_keras.activity`) walks a Keras model's graph and asks this
registry what each layer is. A layer's *role* is one of:

* ``"encoder"``: turns analog values into spike trains ``[batch, T, ...]`` (the
  ``SpikeEncoder``); its spikes are counted, and the analog ``Conv2D``/``Dense`` feeding it
  is costed as the encoder's MACs;
* ``"spiking"``: emits spike trains ``[batch, T, ...]`` that are counted (a user's own
  spiking neuron layer without weights);
* ``"spiking_weighted"``: a spiking layer with its own synapses, fed spike trains
  ``[batch, T, ...]`` (``TandemConv2D``, ``TandemDense``): its MACs and fan-in come from
  ``spec``, and its output spikes are counted;
* ``"weighted"``: a layer with synapses, not spiking (``Conv2D``, ``Dense``): receives
  spikes (SynOps) or analog values (MACs only);
* ``"transparent"``: only moves, drops or sums values (``Dropout``, ``Flatten``,
  ``SpikeCount``, ...): a spike crossing it reaches the same synapses of the next weighted
  layer;
* ``"elementwise"``: an analog element-wise layer (``BatchNormalization``, ``Activation``,
  ...) allowed between an encoder's convolution and the encoder.

``spec(layer, input_shape) -> dict`` gives, for a weighted layer and the shape of one
example's input (no batch axis, no time axis), a layer spec of :mod:`tandem_keras.synops`
(``{"type": "conv2d", ...}`` or ``{"type": "dense", ...}``) from which fan-out, fan-in and
MACs are counted. Roles are looked up along the class's MRO, so subclasses inherit them;
``keras.layers.TimeDistributed`` takes its inner layer's role with a time axis.

Devices: the energy estimate is ``E = e_AC * SynOps + e_MAC * MACs``; the default device
``"horowitz_45nm"`` uses 0.9 pJ per accumulate and 4.6 pJ per multiply-accumulate (45 nm
CMOS, Horowitz 2014). :func:`register_device` adds others by name.

Example:
    >>> import keras, tandem_keras as tk
    >>> class MyDropout(keras.layers.Layer):      # a user's own pass-through layer
    ...     def call(self, x):
    ...         return x
    >>> tk.register_layer(MyDropout, role="transparent")
    >>> tk.registry.layer_role(MyDropout())
    'transparent'
    >>> _ = tk.register_device("my_chip", energy_per_ac=0.1e-12, energy_per_mac=1e-12)
    >>> tk.registry.get_device("my_chip").energy_per_ac
    1e-13
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence, Union

#: The roles a layer can have in the SynOps accounting (see the module docstring).
ROLES = ("encoder", "spiking", "spiking_weighted", "weighted", "transparent", "elementwise")

SpecFn = Callable[[Any, Sequence[int]], dict]


@dataclasses.dataclass(frozen=True)
class LayerRule:
    """A registered layer class's role and, for weighted roles, its spec function."""

    role: str
    spec: Optional[SpecFn] = None


@dataclasses.dataclass(frozen=True)
class Device:
    """Energy per operation of a device, in joules: ``E = e_AC * ACs + e_MAC * MACs``."""

    name: str
    energy_per_ac: float
    energy_per_mac: float
    description: str = ""


_LAYERS: dict[type, LayerRule] = {}
_DEVICES: dict[str, Device] = {}
_BUILTINS_DONE = False

#: Name of the default device.
DEFAULT_DEVICE = "horowitz_45nm"


def register_layer(layer_class: type, role: str, spec: Optional[SpecFn] = None) -> None:
    """Registers how ``layer_class`` (and its subclasses) is counted in SynOps reports.

    Args:
      layer_class: a ``keras.layers.Layer`` subclass.
      role: one of :data:`ROLES`.
      spec: for ``"weighted"`` and ``"spiking_weighted"`` roles, a function
        ``(layer, input_shape) -> layer spec`` (see :mod:`tandem_keras.synops`);
        ``input_shape`` has neither batch nor time axis.

    Raises:
      ValueError: unknown role, or a weighted role without ``spec`` (or a spec for
        another role).
      TypeError: ``layer_class`` is not a class.
    """
    if not isinstance(layer_class, type):
        raise TypeError(f"register_layer: layer_class must be a class, got {layer_class!r}")
    if role not in ROLES:
        raise ValueError(f"register_layer: unknown role {role!r}; choose one of {', '.join(ROLES)}")
    weighted = role in ("weighted", "spiking_weighted")
    if weighted and spec is None:
        raise ValueError(f"register_layer: role {role!r} of {layer_class.__name__} needs a "
                         "spec function (layer, input_shape) -> layer spec")
    if not weighted and spec is not None:
        raise ValueError(f"register_layer: role {role!r} takes no spec function")
    _LAYERS[layer_class] = LayerRule(role, spec)


def layer_rule(layer: Any) -> Optional[LayerRule]:
    """The rule of ``layer`` (first registered class along its MRO), or ``None``."""
    _register_builtins()
    for cls in type(layer).__mro__:
        if cls in _LAYERS:
            return _LAYERS[cls]
    return None


def layer_role(layer: Any) -> Optional[str]:
    """The role of ``layer`` (``TimeDistributed``: its inner layer's), or ``None``."""
    rule = layer_rule(unwrap(layer))
    return None if rule is None else rule.role


def unwrap(layer: Any) -> Any:
    """The layer inside a ``keras.layers.TimeDistributed`` wrapper, else ``layer`` itself."""
    import keras

    return layer.layer if isinstance(layer, keras.layers.TimeDistributed) else layer


def register_device(name: str, energy_per_ac: float, energy_per_mac: float,
                    description: str = "") -> Device:
    """Registers a device's energy per accumulate and per multiply-accumulate (joules).

    Raises:
      ValueError: an empty name, or an energy that is negative or not finite.
    """
    import math

    if not isinstance(name, str) or not name:
        raise ValueError(f"register_device: name must be a non-empty string, got {name!r}")
    for what, value in (("energy_per_ac", energy_per_ac), ("energy_per_mac", energy_per_mac)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"register_device({name!r}): {what} must be a finite number >= 0 "
                             f"(joules), got {value!r}")
    device = Device(name, float(energy_per_ac), float(energy_per_mac), description)
    _DEVICES[name] = device
    return device


def get_device(device: Union[None, str, Device] = None) -> Device:
    """A registered device by name (``None``: :data:`DEFAULT_DEVICE`), or ``device`` itself."""
    if isinstance(device, Device):
        return device
    name = DEFAULT_DEVICE if device is None else device
    if name not in _DEVICES:
        raise ValueError(f"unknown device {name!r}; registered: {', '.join(sorted(_DEVICES))}")
    return _DEVICES[name]


def devices() -> list[str]:
    """Names of the registered devices."""
    return sorted(_DEVICES)


register_device(DEFAULT_DEVICE, 0.9e-12, 4.6e-12,
                "45 nm CMOS, 32-bit float add / multiply-add (Horowitz 2014)")


# --- built-in layers -------------------------------------------------------------------

def conv2d_spec(layer: Any, input_shape: Sequence[int]) -> dict:
    """Layer spec of a channels-last 2D convolution (``Conv2D``, ``TandemConv2D``)."""
    if len(input_shape) != 3 or getattr(layer, "data_format", "channels_last") != "channels_last":
        raise NotImplementedError(
            f"layer {layer.name!r}: only channels-last 2D convolutions are supported")
    if tuple(getattr(layer, "dilation_rate", (1, 1))) != (1, 1):
        raise NotImplementedError(f"layer {layer.name!r}: dilation_rate != 1 is not supported")
    if getattr(layer, "groups", 1) != 1:
        raise NotImplementedError(f"layer {layer.name!r}: grouped convolutions are not supported")
    return {"type": "conv2d", "input_shape": [int(d) for d in input_shape],
            "filters": int(layer.filters), "kernel_size": [int(k) for k in layer.kernel_size],
            "strides": [int(s) for s in layer.strides], "padding": str(layer.padding).lower()}


def dense_spec(layer: Any, input_shape: Sequence[int]) -> dict:
    """Layer spec of a dense layer (``Dense``, ``TandemDense``)."""
    return {"type": "dense", "input_shape": [int(d) for d in input_shape], "units": int(layer.units)}


def _register_builtins() -> None:
    """Registers Keras's and tandem_keras's layers (on first use: avoids import cycles)."""
    global _BUILTINS_DONE
    if _BUILTINS_DONE:
        return
    _BUILTINS_DONE = True
    import keras

    from tandem_keras import layers as tk_layers

    L = keras.layers
    for cls in (L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D,
                L.GaussianDropout, L.GaussianNoise, L.AlphaDropout, L.Identity, L.Flatten,
                L.Reshape, tk_layers.SpikeCount, tk_layers.TimeFlatten):
        _LAYERS.setdefault(cls, LayerRule("transparent"))
    for cls in (L.BatchNormalization, L.Activation, L.ReLU, L.Rescaling, L.Normalization,
                L.LayerNormalization):
        _LAYERS.setdefault(cls, LayerRule("elementwise"))
    _LAYERS.setdefault(L.Conv2D, LayerRule("weighted", conv2d_spec))
    _LAYERS.setdefault(L.Dense, LayerRule("weighted", dense_spec))
    _LAYERS.setdefault(tk_layers.SpikeEncoder, LayerRule("encoder"))
    _LAYERS.setdefault(tk_layers.TandemConv2D, LayerRule("spiking_weighted", conv2d_spec))
    _LAYERS.setdefault(tk_layers.TandemDense, LayerRule("spiking_weighted", dense_spec))
