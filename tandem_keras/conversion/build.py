"""The graph walk of :func:`tandem_keras.convert`: a Keras ANN in, a tandem model out.

:func:`rebuild` visits the call nodes of a functional (or Sequential) model in
topological order and keeps, for every tensor of the ANN, its counterpart in the new
model as a :class:`Value`: the new tensor, its *domain* (``"analog"`` before the encoder,
``"spikes"`` or ``"current"`` for trains ``[batch, T, ...]``, ``"counts"`` after
``SpikeCount``) and its *scale* ``s``: the ANN's tensor is ``s`` times the new tensor's ANN
value (its time-sum for a train), so a layer reading it takes ``s`` into its kernel (or
``TandemAdd`` into its input weight) and ``with_mode(new, "ann")`` computes the ANN. After a
``Concatenate`` of layers with different thresholds ``s`` is one number per channel.
A spiking layer with threshold ``theta`` (the ANN's own layers: ``theta_0``) has
``s = theta / theta_0``. The Keras patterns it fuses are in :mod:`tandem_keras.conversion.patterns`.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Optional

import keras
import numpy as np

from tandem_keras import neurons
from tandem_keras._keras_internals import call_nodes
from tandem_keras._nested import flat
from tandem_keras.conversion import patterns as P
from tandem_keras.layers import (AveragePooling2D, GlobalAveragePooling2D, MaxPooling2D, SpikeCount,
                                 SpikeEncoder, TandemAdd, TimeFlatten)

TRAINS = ("spikes", "current")
MAX_POOLING = ("average", "spiking")
MERGES = ("add", "concatenate")
#: The neuron of a spiking layer made from a Keras layer: IF whose count rounds the ANN's
#: activation instead of flooring it, with the whole half step in ``V(0)`` (method §10), and
#: takes back the spikes an early surplus fired (negative spikes, method §3.6).
DEFAULT_NEURON = neurons.IF(initial_potential=0.5, negative_spikes=True)
#: The default without negative spikes (``negative_spikes=False``, ``max_pooling="spiking"``):
#: half the offset in ``V(0)``, half as a constant current, fewer early spikes (method §10).
DEFAULT_BINARY_NEURON = neurons.IF(initial_potential=0.25, rounding=0.5)


@dataclasses.dataclass
class Value:
    """The new model's tensor standing for one tensor of the ANN (see the module)."""

    tensor: Any
    domain: str
    scale: Any = 1.0   # a number, or an array of one per channel (last axis)


@dataclasses.dataclass
class Row:
    """One line of the conversion report: ANN layers -> the new layer and what it is."""

    source: str
    layer: str
    kind: str
    threshold: Optional[float] = None
    note: str = ""


class ConversionError(ValueError):
    """A model :func:`tandem_keras.convert` cannot convert; the message names the layer."""


def _fmt(scale) -> str:
    if np.ndim(scale) == 0:
        return f"{float(scale):.4g}"
    return f"{float(np.min(scale)):.4g}..{float(np.max(scale)):.4g} per channel"


def _one(scale, who: str, what: str) -> float:
    """``scale`` as one number (refused, naming ``who``, if its channels differ)."""
    values = np.unique(np.asarray(scale, np.float64))
    if values.size != 1:
        raise ConversionError(f"{who} {what} a concatenation of layers with different "
                              "thresholds; convert without calibration or concatenate after it.")
    return float(values[0])


def _same(values) -> bool:
    first = np.asarray(values[0].scale)
    return all(np.shape(v.scale) == first.shape and np.all(np.asarray(v.scale) == first) for v in values)


class _Walk:
    def __init__(self, model, time_steps: int, thresholds: dict, neuron, max_pooling: str,
                 trainable_scales: bool = False, negative_spikes: Optional[bool] = None) -> None:
        self.model, self.time_steps, self.thresholds = model, time_steps, thresholds
        self.neuron, self.trainable_scales = neuron, trainable_scales
        self.negative_spikes = negative_spikes
        self.max_pooling = max_pooling
        self.nodes, self.consumers = call_nodes(model)
        self.output_ids = {id(t) for t in model.outputs}
        self.values: dict[int, Value] = {}
        self.done: set[int] = set()
        self.rows: list[Row] = []
        #: the first activation copied into the analog front end (named if no ReLU follows)
        self.analog_activation = None
        #: spiking layers of the new model: name -> (ANN threshold theta_0, calibratable)
        self.spiking: dict[str, tuple[float, bool]] = {}
        #: those made from a Keras ReLU whose threshold calibration sets
        self.relus: list[str] = []
        self.reaches_weights = self._reaches_weights()

    # ------------------------------------------------------------------ graph
    def _reaches_weights(self) -> dict[int, bool]:
        """``id(node) -> whether a weighted layer is downstream of its outputs``."""
        reach: dict[int, bool] = {}
        for node in reversed(self.nodes):
            reach[id(node)] = any(P.is_weighted(c.operation) or reach.get(id(c), False)
                                  for t in node.outputs for c in self.consumers.get(id(t), []))
        return reach

    def sole_consumer(self, tensor):
        """The one node reading ``tensor`` (not a model output), else None."""
        readers = self.consumers.get(id(tensor), [])
        if len(readers) != 1 or id(tensor) in self.output_ids:
            return None
        return readers[0]

    def theta(self, name: str, theta0: float, calibratable: bool = True, relu: bool = True) -> float:
        self.spiking[name] = (theta0, calibratable)
        if relu and calibratable:
            self.relus.append(name)
        return float(self.thresholds.get(name, theta0)) if calibratable else theta0

    def neuron_for(self, neuron: Any = None):
        """The conversion's neuron (or ``neuron``), with ``negative_spikes`` when it is set."""
        if neuron is None and self.neuron is None:
            binary = self.negative_spikes is False or (
                self.negative_spikes is None and self.max_pooling == "spiking")
            return DEFAULT_BINARY_NEURON if binary else DEFAULT_NEURON
        if neuron is None:
            neuron = self.neuron
        if self.negative_spikes is None or neuron.negative_spikes == self.negative_spikes:
            return neuron
        return type(neuron).from_config({**neuron.get_config(), "negative_spikes": self.negative_spikes})

    # ------------------------------------------------------------------ walk
    def run(self) -> keras.Model:
        inputs = []
        for t in self.model.inputs:
            new = keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=t.name)
            self.values[id(t)] = Value(new, "analog")
            inputs.append(new)
        for node in self.nodes:
            if id(node) in self.done:
                continue
            ins = [self.values[id(t)] for t in node.input_tensors]
            out = self.visit(node, node.operation, ins)
            for t in node.outputs:
                self.values.setdefault(id(t), out)
        if not self.spiking:
            first = self.analog_activation
            reason = P.activation_refusal(first) if first is not None else None
            raise ConversionError(
                f"tk.convert: model {self.model.name!r} has no ReLU to become spiking neurons"
                + (f"; its first activation {P.label(first)}: {reason}" if reason else "") + ".")
        outputs = [self.finish(self.values[id(t)], t) for t in self.model.outputs]
        return keras.Model(inputs if len(inputs) > 1 else inputs[0],
                           outputs if len(outputs) > 1 else outputs[0], name=self.model.name)

    def finish(self, value: Value, original) -> Any:
        """A model output: trains become counts, scales are undone (``Rescaling``)."""
        tensor, scale = value.tensor, value.scale
        if value.domain in TRAINS:
            tensor = SpikeCount(name=f"{P.base(original)}_count")(tensor)
        if np.ndim(scale) or scale != 1.0:
            tensor = keras.layers.Rescaling(_one(scale, f"the model's output {P.base(original)!r}", "is"),
                                            name=f"{P.base(original)}_rescale")(tensor)
        return tensor

    def visit(self, node, layer, ins: list) -> Value:
        if P.is_tandem_keras(layer):
            return self.tandem_keras_layer(node, layer, ins)
        kind = P.keras_kind(layer)
        domains = {v.domain for v in ins}
        if domains <= {"analog"}:
            return self.analog(node, layer, kind, ins)
        if domains <= {"counts"}:
            return self.counts(node, layer, kind, ins)
        if not domains <= set(TRAINS):
            raise ConversionError(f"{P.label(layer)} mixes spike trains with analog values.")
        return self.train(node, layer, kind, ins)

    # ------------------------------------------------------------ analog
    def analog(self, node, layer, kind: str, ins: list) -> Value:
        """Before the encoder: layers copied, the first ReLU becomes the ``SpikeEncoder``."""
        if kind == "relu":
            return self.encoder(layer.name, ins[0], layer)
        if kind == "weighted" and P.activation(layer) == "relu":
            x = P.copy_layer(layer, ins[0].tensor, activation="linear")
            return self.encoder(f"{layer.name}_relu", Value(x, "analog"), layer)
        P.check_supported(layer, kind, analog=True)
        if kind == "activation" and self.analog_activation is None:
            self.analog_activation = layer
        x = P.copy_layer(layer, [v.tensor for v in ins] if kind in MERGES else ins[0].tensor)
        self.rows.append(Row(layer.name, layer.name, "analog (copied)"))
        return Value(x, "analog")

    def encoder(self, name: str, value: Value, source) -> Value:
        theta = self.theta(name, 1.0)
        enc = SpikeEncoder(self.time_steps, threshold=theta, neuron=self.neuron_for(),
                           name=name, dtype=source.dtype_policy.name)
        self.rows.append(Row(source.name, name, "encoder", theta))
        return Value(enc(value.tensor), "spikes", theta)

    # ------------------------------------------------------------ counts
    def counts(self, node, layer, kind: str, ins: list) -> Value:
        """After ``SpikeCount``: analog layers; the first weighted one takes the scale."""
        scale = ins[0].scale
        if kind == "weighted":
            x = P.copy_layer(layer, ins[0].tensor, kernel_scale=scale)
            self.rows.append(Row(layer.name, layer.name, "readout", note=f"kernel x {_fmt(scale)}"))
            return Value(x, "analog")
        if kind == "add" and not _same(ins):
            raise ConversionError(f"{P.label(layer)} adds spike counts of layers with different "
                                  "thresholds; convert without calibration or put the Add before the count.")
        if kind == "concatenate":
            return Value(self._concatenated(layer, ins), "counts", self._concatenated_scale(layer, ins))
        if kind == "batch_norm" and (np.ndim(scale) or scale != 1.0):
            raise ConversionError(f"{P.label(layer)} normalizes spike counts of a calibrated layer; "
                                  "a BatchNormalization after the count is not supported.")
        P.check_supported(layer, kind, analog=True)
        x = P.copy_layer(layer, [v.tensor for v in ins] if kind == "add" else ins[0].tensor)
        self.rows.append(Row(layer.name, layer.name, "analog (copied)"))
        return Value(x, "counts", scale)

    # ------------------------------------------------------------ trains
    def train(self, node, layer, kind: str, ins: list) -> Value:
        v = ins[0]
        if kind == "weighted":
            return self.weighted(node, layer, v)
        if kind == "add":
            return self.add(node, layer, ins)
        if kind == "concatenate":
            domain = "spikes" if all(v.domain == "spikes" for v in ins) else "current"
            self.rows.append(Row(layer.name, layer.name, f"Concatenate of {domain}"))
            return Value(self._concatenated(layer, ins), domain, self._concatenated_scale(layer, ins))
        if kind == "relu" or kind == "identity":
            if kind == "relu" and v.domain != "spikes":
                raise ConversionError(f"{P.label(layer)} is a ReLU of an analog current; only a "
                                      "ReLU after Conv2D/Dense (+BatchNormalization) or Add is supported.")
            return v  # relu of spikes (>= 0) is the identity
        if kind == "batch_norm":
            raise ConversionError(f"{P.label(layer)} does not follow a Conv2D or Dense; a "
                                  "BatchNormalization is folded only into the layer before it.")
        if kind in ("max_pool", "avg_pool"):
            return self.pooling(layer, kind, v)
        if kind == "global_avg_pool":
            x = GlobalAveragePooling2D(keepdims=layer.get_config().get("keepdims", False),
                                       name=layer.name)(v.tensor)
            self.rows.append(Row(layer.name, layer.name, "pooling (tk.GlobalAveragePooling2D)"))
            return Value(x, "current", v.scale)
        if kind == "flatten":
            self.rows.append(Row(layer.name, layer.name, "tk.TimeFlatten"))
            scale = v.scale
            if np.ndim(scale):   # Keras flattens (positions, channels): channels fastest
                scale = np.tile(scale, int(np.prod(v.tensor.shape[2:-1])))
            return Value(TimeFlatten(name=layer.name)(v.tensor), v.domain, scale)
        if kind == "dropout":
            rank = len(v.tensor.shape)
            x = keras.layers.Dropout(layer.rate, noise_shape=(None, 1) + (None,) * (rank - 2),
                                     seed=layer.get_config().get("seed"), name=layer.name)(v.tensor)
            self.rows.append(Row(layer.name, layer.name, "dropout (one mask for all T steps)"))
            return Value(x, v.domain, v.scale)
        if kind == "per_step":
            if v.domain != "spikes":
                raise ConversionError(f"{P.label(layer)} pads a current (pooled spikes); only "
                                      "spike trains can be zero-padded.")
            inner = type(layer).from_config(layer.get_config())
            x = keras.layers.TimeDistributed(inner, name=layer.name)(v.tensor)
            self.rows.append(Row(layer.name, layer.name, "TimeDistributed(ZeroPadding2D)"))
            return Value(x, "spikes", v.scale)
        P.check_supported(layer, kind, analog=False)
        raise ConversionError(f"{P.label(layer)} cannot act on spike trains.")

    def pooling(self, layer, kind: str, v: Value) -> Value:
        config = layer.get_config()
        args = dict(pool_size=config["pool_size"], strides=config["strides"],
                    padding=config["padding"], name=layer.name)
        if kind == "max_pool" and self.max_pooling == "spiking":
            if v.domain != "spikes":
                raise ConversionError(f"{P.label(layer)}: spiking max pooling needs spikes, got a "
                                      "current; use max_pooling='average'.")
            self.rows.append(Row(layer.name, layer.name, "max pooling (tk.MaxPooling2D, OR of spikes)"))
            return Value(MaxPooling2D(**args)(v.tensor), "spikes", v.scale)
        if kind == "max_pool":
            warnings.warn(f"tk.convert: {P.label(layer)} is replaced by average pooling "
                          "(tk.AveragePooling2D); the SNN and its ANN mode differ from the ANN there.",
                          stacklevel=7)  # the caller of tk.convert
            self.rows.append(Row(layer.name, layer.name, "average pooling (was MaxPooling2D)",
                                 note="replaced: max -> average"))
        else:
            self.rows.append(Row(layer.name, layer.name, "pooling (tk.AveragePooling2D)"))
        return Value(AveragePooling2D(**args)(v.tensor), "current", v.scale)

    def weighted(self, node, layer, v: Value) -> Value:
        """Conv2D / Dense (+ BatchNormalization) (+ ReLU) on a train."""
        bn, relu, end = P.fused_chain(self, node, layer)
        if not self.reaches_weights.get(id(end), False) and not (
                relu is None and self._feeds_add(end)):
            counts = SpikeCount(name=f"{layer.name}_count", dtype=layer.dtype_policy.name)(v.tensor)
            self.rows.append(Row(layer.name, f"{layer.name}_count", "tk.SpikeCount"))
            x = P.copy_layer(layer, counts, kernel_scale=v.scale)
            self.rows.append(Row(layer.name, layer.name, "readout (membrane potential)",
                                 note=f"kernel x {_fmt(v.scale)}"))
            for extra in (n for n in (bn, relu) if n is not None and not isinstance(n, str)):
                x = P.copy_layer(extra.operation, x)
                self.done.add(id(extra))
            return self._bind(end, Value(x, "analog"))
        if relu is None and not self._feeds_add(end):
            for reader in self.consumers.get(id(end.outputs[0]), []):   # a ReLU6, a LeakyReLU, ...
                P.refuse_activation(reader.operation)
            raise ConversionError(f"{P.label(layer)} is followed by neither a ReLU nor an Add; a "
                                  "Conv2D/Dense inside the network must be followed by a ReLU "
                                  "(its neurons) or feed an Add (a residual branch).")
        spiking = relu is not None
        name = layer.name
        theta = self.theta(name, 1.0) if spiking else 1.0
        new = P.tandem_layer(layer, bn.operation if bn is not None else None,
                             threshold=theta, neuron=self.neuron_for() if spiking else None)
        x = new(v.tensor)
        P.load_tandem_weights(new, layer, bn.operation if bn is not None else None, v.scale)
        sources = "+".join(n for n in (layer.name, bn and bn.operation.name,
                                       relu and getattr(getattr(relu, "operation", None), "name", "relu"))
                           if n)
        kind = "spiking" if spiking else "synapse-only (current into TandemAdd)"
        self.rows.append(Row(sources, name, f"{type(new).__name__} {kind}",
                             theta if spiking else None, f"kernel x {_fmt(v.scale)}"))
        for extra in (bn, relu):
            if extra is not None and not isinstance(extra, str):
                self.done.add(id(extra))
        return self._bind(end, Value(x, "spikes" if spiking else "current", theta if spiking else 1.0))

    def _concatenated(self, layer, ins: list):
        """A copy of the ``Concatenate`` on the new tensors (a positive axis moved past time)."""
        config = layer.get_config()
        rank = len(layer.input[0].shape)
        axis = int(config.get("axis", -1))
        if ins[0].domain in TRAINS and axis >= 0:
            config["axis"] = axis + 1
        if not _same(ins) and axis not in (-1, rank - 1):
            raise ConversionError(f"{P.label(layer)} concatenates layers with different thresholds "
                                  "on another axis than the channels; convert without calibration.")
        return type(layer).from_config(config)([v.tensor for v in ins])

    @staticmethod
    def _concatenated_scale(layer, ins: list):
        """The scale of a concatenation: the inputs' one, or one per channel."""
        if _same(ins):
            return ins[0].scale
        return np.concatenate([np.broadcast_to(np.asarray(v.scale, np.float64), (int(v.tensor.shape[-1]),))
                               for v in ins])

    def _feeds_add(self, node) -> bool:
        c = self.sole_consumer(node.outputs[0])
        return c is not None and P.keras_kind(c.operation) == "add"

    def _bind(self, end, value: Value) -> Value:
        for t in end.outputs:
            self.values[id(t)] = value
        return value

    def add(self, node, layer, ins: list) -> Value:
        relu = self.sole_consumer(node.outputs[0])
        if relu is None or P.keras_kind(relu.operation) != "relu":
            for reader in self.consumers.get(id(node.outputs[0]), []):
                P.refuse_activation(reader.operation)
            raise ConversionError(f"{P.label(layer)} is not followed by a ReLU: the sum of spike "
                                  "trains and currents must be fired by neurons (tk.TandemAdd).")
        theta = self.theta(layer.name, 1.0)
        scales = [_one(v.scale, P.label(layer), "adds") for v in ins]
        new = TandemAdd(neuron=self.neuron_for(), threshold=theta, scales=scales,
                        trainable_scales=self.trainable_scales, name=layer.name, dtype=layer.dtype_policy.name)
        x = new([v.tensor for v in ins])
        self.done.add(id(relu))
        self.rows.append(Row(f"{layer.name}+{relu.operation.name}", layer.name,
                             "TandemAdd (residual neuron)", theta,
                             "input weights " + ", ".join(f"{w:.4g}" for w in scales)))
        return self._bind(relu, Value(x, "spikes", theta))

    # ------------------------------------------------------------ the library's own layers
    def tandem_keras_layer(self, node, layer, ins: list) -> Value:
        """A tandem_keras layer (e.g. of a ``--mode=ann`` export): the same layer in tandem
        mode, its threshold normalized, its kernel or input weights taking the input's scale."""
        config = layer.get_config()
        # The neurons of an "ann"-mode model never ran: they take the conversion's neuron.
        # A layer trained in a spiking mode keeps its own unless one is given.
        never_ran = config.get("mode") == "ann"
        if "mode" in config:
            config["mode"] = "tandem"
        name, cls = layer.name, type(layer)
        if isinstance(layer, SpikeEncoder):
            config["time_steps"] = self.time_steps
        spiking = P.is_spiking(layer)
        if spiking and "neuron" in config and (self.neuron is not None or never_ran):
            config["neuron"] = neurons.serialize(self.neuron_for())
        elif spiking and config.get("neuron") is not None and self.negative_spikes is not None:
            config["neuron"] = neurons.serialize(self.neuron_for(neurons.get(config["neuron"])))
        theta0 = float(config.get("threshold", 1.0))
        scale_out = 1.0
        if spiking:
            calibratable = self.reaches_weights.get(id(node), False)
            theta = self.theta(name, theta0, calibratable, relu=False)
            config["threshold"] = theta
            scale_out = theta / theta0
        if isinstance(layer, TandemAdd):
            config["trainable_scales"] = layer.trainable_scales or self.trainable_scales
            config["scales"] = [w * _one(v.scale, P.label(layer), "adds")
                                for w, v in zip(layer.current_scales or [1.0] * len(ins), ins)]
        new = cls.from_config(config)
        x = new([v.tensor for v in ins] if len(ins) > 1 else ins[0].tensor)
        weights = layer.get_weights()
        if weights:
            new.set_weights(weights)
        if isinstance(new, TandemAdd) and new.scale_weights is not None:
            new.scale_weights.assign(config["scales"])
        scale_in = ins[0].scale
        weighted = P.is_weighted(new)
        if weighted and (np.ndim(scale_in) or scale_in != 1.0):
            new.weights[0].assign(P.scaled(np.asarray(new.weights[0]), scale_in))
        domain = P.tandem_keras_domain(layer, ins[0].domain)
        if domain in TRAINS and not spiking:
            scale_out = scale_in if not weighted else 1.0
        if domain == "counts":
            scale_out = scale_in
        self.rows.append(Row(name, name, f"{cls.__name__} ({'mode switch' if 'mode' in config else 'copied'})",
                             config.get("threshold") if spiking else None,
                             f"kernel x {_fmt(scale_in)}" if weighted else ""))
        return Value(x, domain, scale_out)


def rebuild(model: keras.Model, *, time_steps: int, thresholds: Optional[dict] = None,
            neuron: Any = None, max_pooling: str = "average", trainable_scales: bool = False,
            negative_spikes: Optional[bool] = None):
    """``(tandem model, report rows, {spiking layer: (theta_0, calibratable)}, [spiking layers
    made from a Keras ReLU whose readers have weights])``; see the module."""
    try:
        model = flat(model)   # a backbone's layers inlined (keras.applications style)
    except ValueError as error:
        raise ConversionError(f"tk.convert: {error}") from None
    walk = _Walk(model, time_steps, dict(thresholds or {}), neuron, max_pooling, trainable_scales,
                 negative_spikes)
    new = walk.run()
    return new, walk.rows, walk.spiking, walk.relus
