"""The one registry of layer kinds: what each layer class is, for every tool of the library.

Each layer class is described once, by a :class:`Kind`: its role, what its output carries,
how SynOps reads it, how it maps to NIR, how ``tk.convert`` treats it in an ANN, whether it
has modes, and the decoding it gives as a model's output. SynOps (``tandem_keras.synops``),
the NIR export, ``tk.convert``, the build-time input checks of the spiking layers,
``with_mode``/``set_mode`` and the export's ``model_kind`` all ask this registry, so a layer
registered once (:func:`register_layer`) takes part in all of them.

Lookup (:func:`kind_of`) goes along the class's MRO, field by field: a subclass inherits
every field it does not set (a user's subclass of ``TandemDense`` is a tandem layer; a tandem
layer built on ``keras.layers.Conv2D`` takes its SynOps and NIR description of the linear
map from ``Conv2D``'s entry); a ``keras.layers.TimeDistributed`` wrapper reads its inner
layer. Keras's own layers are described below; the library's layers register themselves
in their modules.

Roles (the SynOps names, with what they are):

* ``"encoder"``: analog values in, spike trains ``[batch, T, ...]`` out (``SpikeEncoder``);
* ``"spiking_weighted"``: synapses and spiking neurons (the tandem layers, ``TandemAdd``);
  an instance without neurons (``neuron=None``) is ``"weighted"``, synapse-only;
* ``"spiking"``: spiking neurons without synapses (max pooling of spike trains: an OR);
* ``"weighted"``: synapses without neurons (Keras's ``Conv2D``, ``Dense``, ...: the
  readout, the analog encoder convolution, a synapse-only layer);
* ``"linear"``: a linear map without weights, folded into the next weighted layer (pooling;
  with a ``merge`` description: ``Add``, ``Average``, ``Concatenate``);
* ``"transparent"``: moves, drops or sums values (``Dropout``, ``Flatten``, ``TimeFlatten``;
  with ``time="drop"`` a readout of counts, ``SpikeCount``);
* ``"elementwise"``: a per-neuron map (``BatchNormalization``, ``Activation``, ...).

What an output carries (:class:`Carry`): ``"spikes"`` (0/1 trains), ``"current"`` (an exact
input current of the next weighted layer: a synapse-only layer's, pooled spikes, or a
concatenation of spikes and currents), ``"counts"`` (no time axis, after ``SpikeCount``),
``"analog"`` (real values: what a tandem layer must not take as spikes, e.g. a Keras ``Add``
or ``BatchNormalization`` of spike trains), or unknown (``None``: a model input, a layer
without a kind). A spiking layer fed, in a model's graph, by something known not to be
spikes or an exact current is refused when the model is built, naming the layer that made
it (:func:`check_input`).

Example:
    >>> import keras, tandem_keras as tk
    >>> class MyDropout(keras.layers.Layer):      # a user's own pass-through layer
    ...     def call(self, x):
    ...         return x
    >>> tk.register_layer(MyDropout, role="transparent")
    >>> tk.kinds.kind_of(MyDropout()).role
    'transparent'
    >>> tk.kinds.kind_of(tk.TandemDense(3, neuron=None)).role, tk.kinds.has_modes(tk.TandemDense(3))
    ('weighted', True)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence, Union

#: The roles of :class:`Kind` (see the module docstring).
ROLES = ("encoder", "spiking", "spiking_weighted", "weighted", "linear", "transparent",
         "elementwise")
#: Roles whose SynOps ``spec`` (or ``merge``) function is required.
SPEC_ROLES = ("spiking_weighted", "weighted", "linear")
#: What a layer's output can carry (:class:`Carry`).
CARRIES = ("spikes", "current", "counts", "analog")
#: The trains a weighted tandem layer integrates exactly.
TRAINS = ("spikes", "current")

SpecFn = Callable[[Any, Sequence[int]], dict]
#: ``(layer, input_shapes, index, leading) -> spec or None`` for the ``index``-th input of a
#: merge (``leading``: the axes before the neuron axes, batch and time).
MergeFn = Callable[[Any, Sequence[Sequence[int]], int, int], Optional[dict]]


@dataclasses.dataclass(frozen=True)
class Carry:
    """What a tensor of a model's graph carries (``what``: one of :data:`CARRIES`, or None
    for unknown); for ``"analog"`` values made from trains, the layer that made them
    (``via``) and why they are not spikes, with what to use instead (``reason``);
    ``unit``: the values stay in ``[0, 1]`` (averages of spikes), which a layer with
    ``analog_input=True`` takes; ``signed``: spikes of -1 among them (neurons with
    ``negative_spikes=True``), which a weighted layer integrates but max pooling does not."""

    what: Optional[str]
    via: Any = None
    reason: str = ""
    unit: bool = False
    signed: bool = False


UNKNOWN = Carry(None)

_FIELDS = ("role", "spec", "merge", "time", "spike_inputs_only", "carries", "neurons", "nir",
           "nir_linear", "convert", "modes", "decoding")


@dataclasses.dataclass(frozen=True)
class Kind:
    """How a layer class takes part in the library's tools; ``None`` inherits the field from
    the next registered class of the MRO.

    Attributes:
      role: one of :data:`ROLES`, or ``layer -> role`` when it depends on the instance.
      spec: SynOps: ``(layer, input_shape) -> op spec`` (:mod:`tandem_keras.synops.ops`) of
        its linear map, ``input_shape`` without batch and time axes.
      merge: SynOps of a multi-input linear layer: ``(layer, shapes, index, leading) -> spec
        or None`` (None: the input reaches the same neurons, an identity).
      time: ``"keep"`` (default) or ``"drop"`` (the output has no time axis: ``SpikeCount``).
      spike_inputs_only: MACs only for the inputs spikes reach directly (``TandemAdd``).
      carries: what the output carries: a :data:`CARRIES` name, or ``(layer, [Carry of each
        input]) -> Carry`` (``layer`` as called: a ``TimeDistributed`` wrapper is given as
        such); default by role (see :func:`output_carry`).
      neurons: whether the layer has spiking neurons with a threshold (``layer -> bool``).
      nir: the NIR nodes of a call: ``(builder, layer, ports, out_shape) -> port``
        (:mod:`tandem_keras.nir`; None: not exportable).
      nir_linear: the NIR synapse node(s) of the layer's linear map given its weights,
        shared by a Keras layer and its tandem version.
      convert: how ``tk.convert`` reads the layer in an ANN (a rule name of
        :mod:`tandem_keras.conversion.build`, ``"keep"`` for the library's layers), or
        ``layer -> rule``.
      modes: the layer has a ``mode`` (``tk.MODES``) that ``with_mode``/``set_mode`` switch.
      decoding: the decoding a model ending in this layer has (``"membrane"``,
        ``"spike_count"``, ...), or ``layer -> decoding``.
    """

    role: Union[None, str, Callable[[Any], str]] = None
    spec: Optional[SpecFn] = None
    merge: Optional[MergeFn] = None
    time: Optional[str] = None
    spike_inputs_only: Optional[bool] = None
    carries: Union[None, str, Callable] = None
    neurons: Union[None, bool, Callable[[Any], bool]] = None
    nir: Optional[Callable] = None
    nir_linear: Optional[Callable] = None
    convert: Union[None, str, Callable[[Any], str]] = None
    modes: Optional[bool] = None
    decoding: Union[None, str, Callable[[Any], str]] = None


_KINDS: dict[type, Kind] = {}
_TANDEM_VERSIONS: dict[type, type] = {}
_KERAS_DONE = False


def register_layer(layer_class: type, role: Any = None, spec: Optional[SpecFn] = None,
                   time: Optional[str] = None, **fields: Any) -> None:
    """Describes ``layer_class`` (and its subclasses) for every tool of the library.

    Args:
      layer_class: a ``keras.layers.Layer`` subclass (or a mixin of layers).
      role: one of :data:`ROLES` (or ``layer -> role``); None inherits it.
      spec: for the ``"weighted"``, ``"spiking_weighted"`` and ``"linear"`` roles, the SynOps
        op spec of the layer's map, ``(layer, input_shape) -> spec``
        (:mod:`tandem_keras.synops.ops`, e.g. ``{"type": "dense", "input_shape": [...],
        "units": n}``); inherited from a registered base class when not given.
      time: ``"keep"`` or ``"drop"`` (the layer sums or removes the time axis).
      **fields: the other fields of :class:`Kind` (``merge``, ``spike_inputs_only``,
        ``carries``, ``neurons``, ``nir``, ``nir_linear``, ``convert``, ``modes``,
        ``decoding``).

    Registering a class again replaces its description.

    Raises:
      TypeError: ``layer_class`` is not a class.
      ValueError: an unknown role, time, carries or field; a role that needs a spec without
        one (registered or inherited), or a spec for another role.

    Example:
      >>> import keras, tandem_keras as tk
      >>> class MyDense(keras.layers.Layer):
      ...     def __init__(self, units, **kwargs):
      ...         super().__init__(**kwargs)
      ...         self.units = units
      >>> tk.register_layer(MyDense, "weighted", lambda layer, shape: {
      ...     "type": "dense", "input_shape": list(shape), "units": layer.units})
    """
    if not isinstance(layer_class, type):
        raise TypeError(f"register_layer: layer_class must be a class, got {layer_class!r}")
    unknown = set(fields) - set(_FIELDS)
    if unknown:
        raise ValueError(f"register_layer: unknown fields {', '.join(sorted(unknown))}; "
                         f"expected some of {', '.join(_FIELDS)}")
    if isinstance(role, str) and role not in ROLES:
        raise ValueError(f"register_layer: unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if time not in (None, "keep", "drop"):
        raise ValueError(f"register_layer: time must be 'keep' or 'drop', got {time!r}")
    carries = fields.get("carries")
    if isinstance(carries, str) and carries not in CARRIES:
        raise ValueError(f"register_layer: carries must be one of {', '.join(CARRIES)} or a "
                         f"function, got {carries!r}")
    if isinstance(role, str):
        if role in SPEC_ROLES and spec is None and fields.get("merge") is None and (
                _resolve(layer_class, "spec") or _resolve(layer_class, "merge")) is None:
            raise ValueError(f"register_layer: role {role!r} of {layer_class.__name__} needs a "
                             "spec function (layer, input_shape) -> layer spec")
        if role not in SPEC_ROLES and spec is not None:
            raise ValueError(f"register_layer: role {role!r} takes no spec function")
    _KINDS[layer_class] = Kind(role=role, spec=spec, time=time, **fields)


def register_tandem_version(keras_class: type, tandem_class: type) -> None:
    """Records ``tandem_class`` as the tandem version of the Keras layer ``keras_class`` (what
    ``tk.convert`` makes of it); the first one recorded is kept. ``TandemLayer`` records every
    class built directly on a Keras class (``class TandemX(TandemLayer, keras.layers.X)``)."""
    _TANDEM_VERSIONS.setdefault(keras_class, tandem_class)


def tandem_version(keras_class: type) -> Optional[type]:
    """The tandem version of ``keras_class`` (or of the first base class that has one)."""
    for base in keras_class.__mro__:
        if base in _TANDEM_VERSIONS:
            return _TANDEM_VERSIONS[base]
    return None


def unwrap(layer: Any) -> Any:
    """The layer inside a ``keras.layers.TimeDistributed`` wrapper, else ``layer`` itself."""
    import keras

    return layer.layer if isinstance(layer, keras.layers.TimeDistributed) else layer


def provider(cls: type, name: str) -> Optional[type]:
    """The class of ``cls``'s MRO whose registered kind sets the field ``name`` (or None)."""
    _register_keras()
    for base in cls.__mro__:
        kind = _KINDS.get(base)
        if kind is not None and getattr(kind, name) is not None:
            return base
    return None


def _resolve(cls: type, name: str) -> Any:
    base = provider(cls, name)
    return None if base is None else getattr(_KINDS[base], name)


def field(layer: Any, name: str) -> Any:
    """The registered ``name`` field of ``layer``'s kind (``TimeDistributed``: its inner
    layer's), evaluated for the instance when it is a function of the layer; None if no
    class of its MRO sets it."""
    inner = unwrap(layer)
    value = _resolve(type(inner), name)
    if callable(value) and name in ("role", "neurons", "convert", "decoding"):
        return value(inner)
    return value


def kind_of(layer: Any) -> Kind:
    """The resolved :class:`Kind` of ``layer``: every field looked up along the MRO, the
    instance-dependent ones evaluated (``time`` defaults to ``"keep"``)."""
    values = {name: field(layer, name) for name in _FIELDS}
    values["time"] = values["time"] or "keep"
    return Kind(**values)


def role(layer: Any) -> Optional[str]:
    """The role of ``layer`` (None: no kind registered for it)."""
    return field(layer, "role")


def has_modes(layer: Any) -> bool:
    """Whether ``layer`` has a ``mode`` that ``tk.with_mode`` / ``tk.set_mode`` switch."""
    return bool(field(layer, "modes"))


def has_neurons(layer: Any) -> bool:
    """Whether ``layer`` has spiking neurons with a threshold (the encoder, a tandem layer
    with ``neuron`` set, ``TandemAdd``, ...)."""
    return bool(field(layer, "neurons"))


# ------------------------------------------------------------------- what outputs carry
def label(layer: Any) -> str:
    """``'name' (Class)`` or ``'name' (TimeDistributed(Inner))``: how messages name a layer."""
    inner = unwrap(layer)
    kind = type(layer).__name__ + (f"({type(inner).__name__})" if inner is not layer else "")
    return f"'{layer.name}' ({kind})"


def join(inputs: Sequence[Carry]) -> Carry:
    """What a concatenation (or a shape-only op) of ``inputs`` carries: spikes of spikes,
    an exact current of spikes and currents, the first analog input's (with its layer)."""
    whats = [c.what for c in inputs]
    for carry in inputs:
        if carry.what == "analog":
            return carry
    if any(w is None for w in whats):
        return UNKNOWN
    if all(w == "spikes" for w in whats):
        return Carry("spikes", signed=any(c.signed for c in inputs))
    if all(w in TRAINS for w in whats):
        return Carry("current")
    if all(w == "counts" for w in whats):
        return Carry("counts")
    return Carry("analog")


def _from_trains(layer: Any, inputs: Sequence[Carry], reason: str) -> Carry:
    """``analog`` made by ``layer`` when it reads a train (naming it), else passed on."""
    if any(c.what in TRAINS for c in inputs):
        return Carry("analog", layer, reason)
    for carry in inputs:
        if carry.what == "analog":
            return carry
    if any(c.what is None for c in inputs):
        return UNKNOWN
    return Carry("analog")


def output_carry(layer: Any, inputs: Sequence[Carry]) -> Carry:
    """What ``layer``'s output carries, given what its inputs carry (see :class:`Kind`)."""
    kind = kind_of(layer)
    carries = kind.carries
    if isinstance(carries, str):
        return Carry(carries)
    if callable(carries):
        return carries(layer, list(inputs))
    if kind.time == "drop":
        return Carry("counts")
    r = kind.role
    if r is None:
        return UNKNOWN
    if r in ("encoder", "spiking_weighted"):
        return Carry("spikes")
    if r == "transparent":
        return join(inputs)
    if r == "spiking":   # an OR of spikes (max pooling)
        if all(c.what == "spikes" for c in inputs):
            return Carry("spikes")
        return _from_trains(layer, inputs, "the maximum of a current is not a spike train; "
                                           "max pooling takes spikes")
    if r == "elementwise":
        return _from_trains(layer, inputs, "it changes the values of spike trains, which stay 0/1 "
                                           "only through the library's layers")
    return _from_trains(layer, inputs, "a Keras layer with weights on spike trains makes neither "
                                       "spikes nor the current of a tandem layer; use its tandem "
                                       "version (tk.Tandem...), with neuron=None for a current")


_CARRY_TAG = "_tandem_keras_carry"


def carried_by(tensor: Any) -> Carry:
    """What the symbolic Keras ``tensor`` carries, read from the model's graph (unknown for
    an input or an eager tensor). Memoized on the tensor."""
    from tandem_keras._keras_internals import producer

    stack, order = [tensor], []
    while stack:  # the unvisited producers, depth first (no recursion limit on deep models)
        t = stack.pop()
        if getattr(t, _CARRY_TAG, None) is not None or any(t is u for u in order):
            continue
        order.append(t)
        stack.extend(producer(t)[1])
    for t in reversed(order):
        if getattr(t, _CARRY_TAG, None) is not None:
            continue
        layer, parents = producer(t)
        carry = UNKNOWN if layer is None else output_carry(
            layer, [getattr(p, _CARRY_TAG, None) or UNKNOWN for p in parents])
        try:
            setattr(t, _CARRY_TAG, carry)
        except (AttributeError, TypeError):
            return carry
    return getattr(tensor, _CARRY_TAG, None) or UNKNOWN


def check_input(tensor: Any, owner: str, accept: Sequence[str] = TRAINS,
                analog: bool = False) -> Optional[str]:
    """Refuses, when a model is built, an input of a spiking layer known not to be a train.

    ``tensor``: the layer's symbolic input; ``owner``: how the message names the layer;
    ``accept``: what it takes (:data:`TRAINS`, or ``("spikes",)`` for max pooling);
    ``analog``: the layer takes analog values in ``[0, 1]`` (``analog_input=True``).

    Returns what the input carries when the graph proves it is accepted (the layer can
    skip its inference value check), else None (unknown: checked at inference).

    Raises:
      ValueError: the input is made, somewhere on its path, by a layer that turns trains
        into other values (a Keras ``Add``, ``BatchNormalization``, average pooling, ...),
        naming that layer and what to use instead.
    """
    carry = carried_by(tensor)
    if carry.what in accept:
        return carry.what
    if carry.what is None or (analog and (carry.unit or carry.what in TRAINS)):
        return None
    if carry.via is not None:
        raise ValueError(f"{owner} is fed by {label(carry.via)}: {carry.reason}.")
    if carry.what in TRAINS:
        raise ValueError(f"{owner} takes spike trains and is fed a current; only a weighted "
                         "layer integrates a current.")
    raise ValueError(f"{owner} is fed {carry.what} values, not a spike train [batch, time, ...].")


# ------------------------------------------------------------------- Keras's own layers
def _keras_pooling_carries(layer, inputs):
    return Carry("analog", layer, "averages of spikes are not spikes; use tk.AveragePooling2D / "
                                  "tk.GlobalAveragePooling2D (an exact input current of the next "
                                  "layer), or analog_input=True to accept values in [0, 1]",
                 unit=True)


def _sum_carries(layer, inputs):
    name = type(unwrap(layer)).__name__.lower()
    return Carry("analog", layer, f"a {name} of spike trains is not a spike train; merge spike "
                                  "trains and currents with tk.TandemAdd (IF neurons after the "
                                  "addition)")


def _concatenate_carries(layer, inputs):
    return join(inputs)


def _batch_norm_carries(layer, inputs):
    return _from_trains(layer, inputs, "a BatchNormalization of spike trains is not a spike train; "
                                       "normalize inside the tandem layer that makes them "
                                       "(batch_norm=True, its fused BN)")


def spikes_of(neuron: Any) -> Carry:
    """What a layer of spiking ``neuron`` outputs: spikes, signed if it has negative spikes."""
    return Carry("spikes", signed=bool(getattr(neuron, "negative_spikes", False)))


def _relu_carries(layer, inputs):
    if any(c.signed for c in inputs):
        return Carry("analog", layer, "a ReLU of signed spikes drops the negative spikes")
    if all(c.what == "spikes" for c in inputs) and _relu_rule(unwrap(layer)) == "relu":
        return Carry("spikes")   # relu of 0/1 is 0/1
    return _from_trains(layer, inputs, "an activation of spike trains is not a spike train")


def _relu_rule(layer) -> str:
    """``tk.convert``'s reading of an activation layer: a plain ReLU (the neurons), the
    identity, or another activation (kept on analog values only)."""
    import keras

    if isinstance(layer, keras.layers.ReLU):
        c = layer.get_config()
        plain = c.get("max_value") is None and not c.get("negative_slope") and not c.get("threshold")
        return "relu" if plain else "other"
    act = getattr(layer, "activation", None)
    name = "linear" if act is None else keras.activations.serialize(act)
    name = name if isinstance(name, str) else str(name)
    return {"relu": "relu", "linear": "identity"}.get(name, "activation")


def _register_keras() -> None:
    """Describes Keras's own layers (on first use: no import cycles with the layers)."""
    global _KERAS_DONE
    if _KERAS_DONE:
        return
    _KERAS_DONE = True
    import keras

    from tandem_keras import _nir_nodes
    from tandem_keras.synops import layer_specs as S

    L = keras.layers
    table: dict = {}
    for cls in (L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D,
                L.GaussianDropout, L.GaussianNoise, L.AlphaDropout, L.Identity,
                L.ActivityRegularization):
        table[cls] = Kind("transparent", nir=_nir_nodes.pass_through, convert="dropout")
    for cls in (L.GaussianNoise, L.GaussianDropout, L.AlphaDropout, L.SpatialDropout1D,
                L.SpatialDropout2D, L.SpatialDropout3D, L.ActivityRegularization):
        table[cls] = dataclasses.replace(table[cls], convert=None)
    table[L.Identity] = dataclasses.replace(table[L.Identity], convert="identity")
    table[L.Flatten] = Kind("transparent", nir=_nir_nodes.flatten, convert="flatten")
    table[L.Reshape] = Kind("transparent")
    table[L.ZeroPadding2D] = Kind(convert="per_step", carries=_concatenate_carries)
    for cls in (L.Rescaling, L.Normalization):
        table[cls] = Kind("elementwise", convert="rescaling")
    table[L.LayerNormalization] = Kind("elementwise")
    table[L.BatchNormalization] = Kind("elementwise", carries=_batch_norm_carries, convert="batch_norm")
    table[L.Activation] = Kind("elementwise", carries=_relu_carries, convert=_relu_rule)
    table[L.ReLU] = Kind("elementwise", carries=_relu_carries, convert=_relu_rule)
    table[L.Softmax] = Kind("elementwise", convert="activation")
    table[L.InputLayer] = Kind(convert="input")
    for cls in (L.Conv1D, L.Conv2D):
        table[cls] = Kind("weighted", S.conv_spec, nir_linear=_nir_nodes.conv_synapses, convert="weighted")
    table[L.Conv3D] = Kind("weighted", S.conv_spec, convert="weighted")   # NIR 1.0 has no Conv3d
    table[L.DepthwiseConv2D] = Kind("weighted", S.depthwise_conv2d_spec,
                                    nir_linear=_nir_nodes.depthwise_synapses, convert="weighted")
    table[L.SeparableConv2D] = Kind("weighted", S.separable_conv2d_spec,
                                    nir_linear=_nir_nodes.separable_synapses, convert="weighted")
    table[L.Dense] = Kind("weighted", S.dense_spec, nir=_nir_nodes.readout, nir_linear=_nir_nodes.dense_synapses,
                          convert="weighted", decoding="membrane")
    for cls in (L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D,
                L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D):
        table[cls] = Kind(carries=_keras_pooling_carries)
    table[L.AveragePooling2D] = Kind("linear", S.avg_pool2d_spec, carries=_keras_pooling_carries,
                                     nir=_nir_nodes.avg_pool, convert="avg_pool")
    table[L.GlobalAveragePooling2D] = Kind("linear", S.global_avg_pool2d_spec,
                                           carries=_keras_pooling_carries, nir=_nir_nodes.global_avg_pool,
                                           convert="global_avg_pool")
    for cls in (L.Add, L.Average):
        table[cls] = Kind("linear", merge=S.sum_merge, carries=_sum_carries)
    table[L.Add] = dataclasses.replace(table[L.Add], nir=_nir_nodes.add, convert="add")
    table[L.Subtract] = Kind(carries=_sum_carries)
    table[L.Concatenate] = Kind("linear", merge=S.concat_merge, carries=_concatenate_carries,
                                nir=_nir_nodes.concatenate, convert="concatenate")
    table[L.MaxPooling2D] = Kind("spiking", convert="max_pool")   # on spike trains: a per-step OR
    for cls, kind in table.items():
        _KINDS.setdefault(cls, kind)
