"""How each layer takes part in the SynOps accounting, and the energy figures of devices.

The graph walk (:mod:`tandem_keras.synops.graph`) asks this registry what a layer is. Rules
are looked up along the class's MRO (subclasses inherit them); a
``keras.layers.TimeDistributed`` wrapper takes its inner layer's rule. A layer's *role*:

* ``"encoder"``: turns analog values into spike trains ``[batch, T, ...]`` (``SpikeEncoder``);
  its spikes are counted, the analog ``Conv2D``/``Dense`` feeding it is its MACs;
* ``"spiking"``: emits counted spike trains, has no synapses (a user's own neuron layer,
  max pooling of spike trains: a per-step OR): spikes reaching it cost nothing;
* ``"spiking_weighted"``: synapses and neurons (``TandemConv2D``, ``TandemDense``, and
  ``TandemAdd``, whose synapses are one per neuron of each spike-train input);
* ``"weighted"``: synapses without neurons (``Conv2D``, ``Dense``, ``DepthwiseConv2D``, a
  synapse-only tandem layer ``neuron=None``): spikes reaching it cross its synapses;
* ``"linear"``: a linear map without weights (average pooling, global average pooling,
  ``Add``, ``Average``, ``Concatenate``): folded into the next weighted layer, whose
  composite map gives the fan-out (method §6);
* ``"transparent"``: only moves, drops or sums values (``Dropout``, ``Flatten``,
  ``SpikeCount``, ...); ``"elementwise"``: a per-neuron map (``BatchNormalization``,
  ``Activation``, ...). A spike crosses both to the same synapses.

``spec(layer, input_shape) -> dict`` gives, for weighted and linear roles, an operation spec
of :mod:`tandem_keras.synops.ops` (``input_shape``: one example's, no batch or time axis),
from which fan-out, fan-in and MACs are counted. ``time="drop"`` marks a layer whose output
has lost the input's time axis (``SpikeCount``); by default the output keeps it.

Devices: ``E = e_AC * SynOps + e_MAC * MACs``; the default ``"horowitz_45nm"`` is 0.9 pJ per
accumulate and 4.6 pJ per multiply-accumulate (45 nm CMOS, Horowitz 2014).

Example:
    >>> import keras, tandem_keras as tk
    >>> class MyDropout(keras.layers.Layer):      # a user's own pass-through layer
    ...     def call(self, x):
    ...         return x
    >>> tk.register_layer(MyDropout, role="transparent")
    >>> tk.synops.registry.layer_role(MyDropout())
    'transparent'
    >>> _ = tk.register_device("my_chip", energy_per_ac=0.1e-12, energy_per_mac=1e-12)
    >>> tk.synops.registry.get_device("my_chip").energy_per_ac
    1e-13
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional, Sequence, Union

#: The roles a layer can have in the SynOps accounting (see the module docstring).
ROLES = ("encoder", "spiking", "spiking_weighted", "weighted", "linear", "transparent",
         "elementwise")
#: Roles whose ``spec`` function is required (and allowed).
SPEC_ROLES = ("spiking_weighted", "weighted", "linear")

SpecFn = Callable[[Any, Sequence[int]], dict]
#: ``(layer, input_shapes, index, leading) -> spec or None`` for the ``index``-th input of a
#: merge (``leading``: the axes before the neuron axes, batch and time).
MergeFn = Callable[[Any, Sequence[Sequence[int]], int, int], Optional[dict]]


@dataclasses.dataclass(frozen=True)
class LayerRule:
    """A layer class's role, its spec function, and how it treats the time axis.

    ``merge`` (multi-input linear layers) replaces ``spec``; ``spike_inputs_only``: MACs
    only on the inputs that spikes reach directly (``TandemAdd``: currents are free).
    """

    role: str
    spec: Optional[SpecFn] = None
    time: str = "keep"
    merge: Optional[MergeFn] = None
    spike_inputs_only: bool = False


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


def register_layer(layer_class: type, role: str, spec: Optional[SpecFn] = None,
                   time: str = "keep") -> None:
    """Registers how ``layer_class`` (and its subclasses) is counted in SynOps reports.

    Args:
      layer_class: a ``keras.layers.Layer`` subclass.
      role: one of :data:`ROLES`.
      spec: for the ``"weighted"``, ``"spiking_weighted"`` and ``"linear"`` roles, a
        function ``(layer, input_shape) -> spec`` (:mod:`tandem_keras.synops.ops`: e.g.
        ``{"type": "conv2d", ...}``, ``{"type": "avg_pool2d", ...}``); ``input_shape`` has
        neither batch nor time axis.
      time: ``"keep"`` (the output has a time axis when the input has) or ``"drop"`` (the
        layer sums or removes it, as ``SpikeCount``).

    Raises:
      ValueError: unknown role or time, a role that needs a spec without one (or a spec
        for another role).
      TypeError: ``layer_class`` is not a class.
    """
    if not isinstance(layer_class, type):
        raise TypeError(f"register_layer: layer_class must be a class, got {layer_class!r}")
    if role not in ROLES:
        raise ValueError(f"register_layer: unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if time not in ("keep", "drop"):
        raise ValueError(f"register_layer: time must be 'keep' or 'drop', got {time!r}")
    if role in SPEC_ROLES and spec is None:
        raise ValueError(f"register_layer: role {role!r} of {layer_class.__name__} needs a "
                         "spec function (layer, input_shape) -> layer spec")
    if role not in SPEC_ROLES and spec is not None:
        raise ValueError(f"register_layer: role {role!r} takes no spec function")
    _LAYERS[layer_class] = LayerRule(role, spec, time)


def unwrap(layer: Any) -> Any:
    """The layer inside a ``keras.layers.TimeDistributed`` wrapper, else ``layer`` itself."""
    import keras

    return layer.layer if isinstance(layer, keras.layers.TimeDistributed) else layer


def layer_rule(layer: Any) -> Optional[LayerRule]:
    """The rule of ``layer`` (``TimeDistributed``: its inner layer's), or ``None``.

    A tandem layer built with ``neuron=None`` (synapses only) is ``"weighted"``.
    """
    _register_builtins()
    inner = unwrap(layer)
    for cls in type(inner).__mro__:
        if cls in _LAYERS:
            rule = _LAYERS[cls]
            if rule.role == "spiking_weighted" and _synapse_only(inner):
                return dataclasses.replace(rule, role="weighted")
            return rule
    return None


def layer_role(layer: Any) -> Optional[str]:
    """The role of ``layer``, or ``None`` if unregistered."""
    rule = layer_rule(layer)
    return None if rule is None else rule.role


def _synapse_only(layer: Any) -> bool:
    return hasattr(layer, "neuron") and getattr(layer, "neuron") is None


def register_device(name: str, energy_per_ac: float, energy_per_mac: float,
                    description: str = "") -> Device:
    """Registers a device's energy per accumulate and per multiply-accumulate (joules).

    Raises:
      ValueError: an empty name, or an energy that is negative or not finite.
    """
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


def energy_joules(accumulates: float = 0.0, multiply_accumulates: float = 0.0,
                  device: Any = None) -> float:
    """Energy estimate ``e_AC * ACs + e_MAC * MACs`` (joules) on a registered device.

    Example:
        >>> round(energy_joules(1e6, 1e6) * 1e6, 6)   # microjoules, default device
        5.5
    """
    d = get_device(device)
    return d.energy_per_ac * float(accumulates) + d.energy_per_mac * float(multiply_accumulates)


register_device(DEFAULT_DEVICE, 0.9e-12, 4.6e-12,
                "45 nm CMOS, 32-bit float add / multiply-add (Horowitz 2014)")


# --- spec functions of the built-in layers ---------------------------------------------

def _ints(values: Sequence[Any]) -> list[int]:
    return [int(v) for v in values]


def _channels_last_2d(layer: Any, input_shape: Sequence[int]) -> None:
    if len(input_shape) != 3 or getattr(layer, "data_format", "channels_last") != "channels_last":
        raise NotImplementedError(f"layer {layer.name!r}: only channels-last 2D maps "
                                  f"[H, W, C] are counted, got input {list(input_shape)}")


def _window(layer: Any) -> dict:
    spec = {"kernel_size": _ints(layer.kernel_size), "strides": _ints(layer.strides),
            "padding": str(layer.padding).lower()}
    dilation = _ints(getattr(layer, "dilation_rate", (1, 1)))
    if dilation != [1, 1]:
        spec["dilation_rate"] = dilation
    return spec


def conv2d_spec(layer: Any, input_shape: Sequence[int]) -> dict:
    """Spec of a channels-last 2D convolution (``Conv2D``, ``TandemConv2D``)."""
    _channels_last_2d(layer, input_shape)
    if getattr(layer, "groups", 1) != 1:
        raise NotImplementedError(f"layer {layer.name!r}: grouped convolutions are not counted")
    return {"type": "conv2d", "input_shape": _ints(input_shape), "filters": int(layer.filters),
            **_window(layer)}


def depthwise_conv2d_spec(layer: Any, input_shape: Sequence[int]) -> dict:
    """Spec of a channels-last depthwise convolution (``DepthwiseConv2D``)."""
    _channels_last_2d(layer, input_shape)
    return {"type": "depthwise_conv2d", "input_shape": _ints(input_shape),
            "depth_multiplier": int(layer.depth_multiplier), **_window(layer)}


def dense_spec(layer: Any, input_shape: Sequence[int]) -> dict:
    """Spec of a dense layer (``Dense``, ``TandemDense``)."""
    return {"type": "dense", "input_shape": _ints(input_shape), "units": int(layer.units)}


def identity_spec(layer: Any, input_shape: Sequence[int]) -> dict:
    """One synapse per neuron: a spike train into ``TandemAdd`` (weight ``w_i``)."""
    return {"type": "identity", "input_shape": _ints(input_shape)}


def avg_pool2d_spec(layer: Any, input_shape: Sequence[int]) -> dict:
    """Spec of 2D average pooling (``AveragePooling2D``; ``tk.AveragePooling2D``)."""
    _channels_last_2d(layer, input_shape)
    pool = _ints(layer.pool_size)
    return {"type": "avg_pool2d", "input_shape": _ints(input_shape), "pool_size": pool,
            "strides": _ints(layer.strides or pool), "padding": str(layer.padding).lower()}


def global_avg_pool2d_spec(layer: Any, input_shape: Sequence[int]) -> dict:
    """Spec of global average pooling over H and W (``GlobalAveragePooling2D``)."""
    _channels_last_2d(layer, input_shape)
    return {"type": "global_avg_pool2d", "input_shape": _ints(input_shape),
            "keepdims": bool(getattr(layer, "keepdims", False))}


def _sum_merge(layer: Any, input_shapes: Sequence[Sequence[int]], index: int,
               leading: int) -> None:
    return None  # Add, Average: every input reaches the same neurons (an identity)


def _concat_merge(layer: Any, input_shapes: Sequence[Sequence[int]], index: int,
                  leading: int) -> dict:
    shape = input_shapes[index]
    axis = int(layer.axis)
    axis = axis + len(shape) if axis < 0 else axis - leading  # an axis of the neurons
    if not 0 <= axis < len(shape):
        raise NotImplementedError(f"layer {layer.name!r}: concatenation along the batch or "
                                  "time axis is not counted")
    offset = sum(int(s[axis]) for s in input_shapes[:index])
    return {"type": "concat", "input_shape": _ints(shape), "axis": axis, "offset": offset,
            "size": sum(int(s[axis]) for s in input_shapes)}


def _register_builtins() -> None:
    """Registers Keras's and tandem_keras's layers (on first use: avoids import cycles)."""
    global _BUILTINS_DONE
    if _BUILTINS_DONE:
        return
    _BUILTINS_DONE = True
    import keras

    from tandem_keras import layers as tk

    L = keras.layers
    rules = {}
    for cls in (L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D,
                L.GaussianDropout, L.GaussianNoise, L.AlphaDropout, L.Identity, L.Flatten,
                L.Reshape, L.ActivityRegularization, tk.TimeFlatten):
        rules[cls] = LayerRule("transparent")
    rules[tk.SpikeCount] = LayerRule("transparent", time="drop")
    for cls in (L.BatchNormalization, L.Activation, L.ReLU, L.Rescaling, L.Normalization,
                L.LayerNormalization):
        rules[cls] = LayerRule("elementwise")
    rules[L.Conv2D] = LayerRule("weighted", conv2d_spec)
    rules[L.DepthwiseConv2D] = LayerRule("weighted", depthwise_conv2d_spec)
    rules[L.Dense] = LayerRule("weighted", dense_spec)
    rules[L.AveragePooling2D] = LayerRule("linear", avg_pool2d_spec)
    rules[L.GlobalAveragePooling2D] = LayerRule("linear", global_avg_pool2d_spec)
    rules[L.Add] = rules[L.Average] = LayerRule("linear", merge=_sum_merge)
    rules[L.Concatenate] = LayerRule("linear", merge=_concat_merge)
    rules[L.MaxPooling2D] = LayerRule("spiking")   # on spike trains: a per-step OR
    rules[tk.SpikeEncoder] = LayerRule("encoder")
    rules[tk.TandemConv2D] = LayerRule("spiking_weighted", conv2d_spec)
    rules[tk.TandemDense] = LayerRule("spiking_weighted", dense_spec)
    # The time-aware layers of issue 17, when this version of the library has them.
    optional = {"AveragePooling2D": LayerRule("linear", avg_pool2d_spec),
                "GlobalAveragePooling2D": LayerRule("linear", global_avg_pool2d_spec),
                "MaxPooling2D": LayerRule("spiking"),
                "TandemAdd": LayerRule("spiking_weighted", identity_spec, spike_inputs_only=True),
                "TandemDepthwiseConv2D": LayerRule("spiking_weighted", depthwise_conv2d_spec)}
    for name, rule in optional.items():
        cls = getattr(tk, name, None)
        if isinstance(cls, type):
            rules[cls] = rule
    for cls, rule in rules.items():
        _LAYERS.setdefault(cls, rule)
