"""A Keras model's graph, read for SynOps: spiking layers, their spikes' paths, MACs.

:func:`describe_model` walks a functional (or Sequential) model's call graph. Every
*spiking layer* (a layer whose output spike train ``[batch, T, ...]`` is counted: the
``SpikeEncoder``, tandem layers with neurons, ``TandemAdd``, max pooling of spike trains, a
user's registered spiking layer) gets the *chains* its spikes follow: the linear maps
without weights they cross (pooling, global average pooling, ``Add``, ``Concatenate``,
reshapes) up to each weighted operation they reach (a convolution, a dense layer, a
synapse-only tandem layer, the identity synapses of ``TandemAdd``). From the chains,
:mod:`tandem_keras.synops.ops` counts the exact fan-out of every neuron of the composite
map. Layers spikes reach without synapses (max pooling, a user's spiking layer) cost
nothing. How a layer class is read is asked of the registry of layer kinds
(:mod:`tandem_keras.kinds`).

Example:
    >>> import keras, tandem_keras as tk
    >>> m = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, padding="same"),
    ...     tk.SpikeEncoder(4, name="enc"), tk.TandemConv2D(6, 3, strides=2, name="conv"),
    ...     tk.SpikeCount(), keras.layers.GlobalAveragePooling2D(name="gap"),
    ...     keras.layers.Dense(10, name="out")])
    >>> d = describe_model(m)
    >>> [(r["name"], r["kind"], r["macs"]) for r in d["layers"]]
    [('enc', 'encoder', 6912), ('conv', 'tandem', 3456), ('out', 'readout', 60)]
    >>> [[s["type"] for s in chain] for chain in d["layers"][1]["fanout_chains"]]
    [['global_avg_pool2d', 'dense']]
    >>> d["inference_time_steps"]
    6
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tandem_keras import kinds
from tandem_keras._keras_internals import call_nodes
from tandem_keras._nested import flat
from tandem_keras.synops import composite, ops
from tandem_keras.synops.accounting import METADATA_FORMAT

_SOURCE_ROLES = ("encoder", "spiking", "spiking_weighted")
_WEIGHTED_ROLES = ("weighted", "spiking_weighted")


def _static(shape: Sequence[Any], what: str) -> list[int]:
    if any(d is None for d in shape):
        raise ValueError(f"{what} needs static non-batch dimensions, got {tuple(shape)}")
    return [int(d) for d in shape]


class _Graph:
    """Call nodes in topological order with, per tensor, whether axis 1 is time."""

    def __init__(self, model: Any) -> None:
        import keras

        self.model = model
        self.nodes, self.consumers = call_nodes(model)
        self.producers = {id(t): node for node in self.nodes for t in node.outputs}
        self.timed: dict[int, bool] = {}
        for node in self.nodes:
            rule = self.rule(node)
            timed_in = any(self.timed.get(id(t), False) for t in node.input_tensors)
            if rule.role == "encoder":
                timed = True
            elif rule.time == "drop":
                timed = False
            else:
                timed = timed_in or isinstance(node.operation, keras.layers.TimeDistributed)
            for tensor in node.outputs:
                self.timed[id(tensor)] = timed

    @staticmethod
    def rule(node: Any) -> kinds.Kind:
        return kinds.kind_of(node.operation)

    def role(self, node: Any) -> Any:
        return kinds.role(node.operation)

    def shape(self, tensor: Any, what: str) -> list[int]:
        """One example's neuron shape of ``tensor`` (no batch axis, no time axis)."""
        return _static(tensor.shape[2 if self.timed.get(id(tensor)) else 1:], what)

    def is_source(self, node: Any) -> bool:
        """A spiking layer: its output spike train ``[batch, T, ...]`` is counted."""
        return self.role(node) in _SOURCE_ROLES and bool(self.timed[id(node.outputs[0])])

    def spec(self, node: Any, index: int) -> Any:
        """The op spec of ``node`` for its ``index``-th input (None: an identity)."""
        layer, rule = node.operation, self.rule(node)
        inner = kinds.unwrap(layer)
        tensors = node.input_tensors
        shapes = [self.shape(t, f"layer {layer.name!r}") for t in tensors]
        if rule.merge is not None:
            leading = 2 if self.timed.get(id(tensors[index])) else 1
            spec = rule.merge(inner, shapes, index, leading)
        else:
            spec = rule.spec(inner, shapes[index])
        if spec is None:
            return None
        allowed = ops.LINEAR if rule.role == "linear" else ops.WEIGHTED
        if spec.get("type") not in allowed:
            raise ValueError(f"layer {layer.name!r}: its registered spec function returned "
                             f"type {spec.get('type')!r}, expected one of {', '.join(allowed)}")
        return dict(spec, layer=layer.name)

    def chains(self, source: Any) -> tuple[list, set]:
        """The chains of specs the spikes of ``source`` follow, and the (node, input) pairs
        they reach as synapses."""
        name = source.operation.name
        chains, reached = [], set()
        stack = [(source.outputs[0], [])]
        while stack:
            tensor, path = stack.pop()
            size = int(np.prod(self.shape(tensor, f"layer {name!r}")))
            for node in self.consumers.get(id(tensor), []):
                layer, role = node.operation, self.role(node)
                for index, t in enumerate(node.input_tensors):
                    if t is not tensor:
                        continue
                    if role in ("transparent", "elementwise"):
                        out = self.shape(node.outputs[0], f"layer {layer.name!r}")
                        if int(np.prod(out)) != size:
                            raise NotImplementedError(
                                f"spikes of {name!r} reach {layer.name!r} reshaped to {out} "
                                f"with a different number of neurons")
                        stack.append((node.outputs[0], path))
                    elif role == "linear":
                        spec = self.spec(node, index)
                        stack.append((node.outputs[0], path + ([spec] if spec else [])))
                    elif role in _WEIGHTED_ROLES:
                        spec = self.spec(node, index)
                        if len(node.input_tensors) > 1:
                            spec["input"] = index  # which input's synapses (TandemAdd)
                        chains.append(path + [spec])
                        reached.add((id(node), index))
                    elif role in _SOURCE_ROLES and self.is_source(node):
                        continue  # a spiking layer without synapses of its own
                    else:
                        kind = type(kinds.unwrap(layer)).__name__
                        raise NotImplementedError(
                            f"cannot count the fan-out of {name!r} into layer {layer.name!r} "
                            f"({kind}); register its role with tk.register_layer (counted: "
                            "convolutions, dense, pooling, Add, Concatenate, tandem and "
                            "shape-only layers; max pooling on spike trains, not on counts)")
        return chains, reached

    def encoder_macs_node(self, node: Any) -> Any:
        """The Conv2D/Dense call feeding a SpikeEncoder through element-wise layers, or None."""
        tensor = node.input_tensors[0]
        while id(tensor) in self.producers:
            parent = self.producers[id(tensor)]
            if len(self.consumers.get(id(tensor), [])) != 1:
                return None
            if self.role(parent) in _WEIGHTED_ROLES:
                return parent
            if self.role(parent) not in ("transparent", "elementwise") or len(parent.input_tensors) != 1:
                return None
            tensor = parent.input_tensors[0]
        return None


def _kind(graph: _Graph, node: Any, source: bool, after_spikes: bool) -> str:
    role, rule = graph.role(node), graph.rule(node)
    if role == "encoder":
        return "encoder"
    if source:
        if role == "spiking_weighted":
            return "residual" if rule.spike_inputs_only else "tandem"
        return "spiking"
    if not after_spikes:
        return "analog"
    return "synapses" if graph.timed[id(node.outputs[0])] else "readout"


def describe_model(model: Any) -> dict:
    """JSON-able description of a tandem model for SynOps accounting (no weights).

    One row per *paper layer*, in graph order: every spiking layer and every weighted one.
    A row holds its neuron ``shape``, the MAC specs of its own synapses (``mac_specs``; an
    encoder's analog ``Conv2D`` is merged into the ``SpikeEncoder`` row) and ``macs``, and
    for a spiking row the chains its spikes follow (``fanout_chains``, see the module
    docstring). ``kind``: ``"encoder"``, ``"tandem"`` (a tandem layer with neurons),
    ``"residual"`` (``TandemAdd``), ``"spiking"`` (spiking, no synapses: max pooling, a
    user's layer), ``"synapses"`` (weighted, fed by spikes, its output a current per step:
    a synapse-only tandem layer), ``"readout"`` (weighted, fed by spikes, no time axis),
    ``"analog"`` (weighted, before any spike).

    Also: ``time_steps`` (T), ``spiking_depth`` (spiking layers on the longest path) and
    ``inference_time_steps = T + spiking_depth`` (method §5), ``input_shape``,
    ``num_classes``, and ``format`` (``tandem_keras.activity/2``).

    Raises:
      NotImplementedError: a layer whose fan-out cannot be counted, naming it.
      ValueError: no spiking layer, no symbolic graph, or a dynamic shape.
    """
    graph = _Graph(flat(model))
    merged = set()
    for node in graph.nodes:
        if graph.role(node) == "encoder":
            mac_node = graph.encoder_macs_node(node)
            if mac_node is not None:
                merged.add(id(mac_node))
    walks = {id(n): graph.chains(n) for n in graph.nodes if graph.is_source(n)}
    reached = set().union(*(r for _, r in walks.values()))
    rows, depth, after_spikes, time_steps = [], {}, {}, None
    for node in graph.nodes:
        layer = node.operation
        parents = [graph.producers[id(t)] for t in node.input_tensors if id(t) in graph.producers]
        source = graph.is_source(node)
        depth[id(node)] = max([depth[id(p)] for p in parents], default=0) + int(source)
        after_spikes[id(node)] = source or any(after_spikes[id(p)] for p in parents)
        weighted = graph.role(node) in _WEIGHTED_ROLES
        if not (source or weighted) or id(node) in merged:
            continue
        out = node.outputs[0]
        shape = graph.shape(out, f"layer {layer.name!r}")
        row = {"name": layer.name, "class": type(kinds.unwrap(layer)).__name__,
               "shape": shape, "neurons": int(np.prod(shape)), "spiking": source,
               "kind": _kind(graph, node, source, after_spikes[id(node)]),
               "mac_specs": [], "fanout_chains": []}
        if source:
            if time_steps is None:
                time_steps = int(getattr(kinds.unwrap(layer), "time_steps", None) or out.shape[1])
            row["fanout_chains"] = walks[id(node)][0]
            composite.chain_fanout(shape, row["fanout_chains"], layer.name)  # refuses what it cannot count
        if row["kind"] == "encoder":
            mac_node = graph.encoder_macs_node(node)
            if mac_node is not None:
                row["mac_specs"] = [graph.spec(mac_node, 0)]
        elif weighted:
            only_spikes = graph.rule(node).spike_inputs_only
            row["mac_specs"] = [graph.spec(node, i) for i in range(len(node.input_tensors))
                                if not only_spikes or (id(node), i) in reached]
        row["macs"] = int(sum(ops.macs(s) for s in row["mac_specs"]))
        rows.append(row)
    if time_steps is None:
        raise ValueError(f"model {model.name!r} has no spiking layer (SpikeEncoder / Tandem*)")
    spiking_depth = max(depth.values(), default=0)
    return {
        "format": METADATA_FORMAT,
        "model_name": model.name,
        "time_steps": time_steps,
        "spiking_depth": spiking_depth,
        "inference_time_steps": time_steps + spiking_depth,
        "input_shape": _static(model.inputs[0].shape[1:], "model input"),
        "num_classes": int(model.outputs[0].shape[-1]),
        "layers": rows,
    }


def spiking_nodes(model: Any) -> list:
    """The call nodes of ``model``'s spiking layers (those :func:`describe_model` counts)."""
    graph = _Graph(model)
    return [node for node in graph.nodes if graph.is_source(node)]


def activity_model(model: Any, spike_trains: bool = False, net: bool = False) -> Any:
    """A functional model ``x -> {"logits": model(x), <layer name>: counts, ...}``.

    Counts are the spikes each neuron of a spiking layer emits, ``c = sum_t |s(t)|``
    (``sum_t s(t)`` for 0/1 spikes; a negative spike is a synaptic event too), ``[batch,
    ...]``; with ``net=True`` the net counts ``sum_t s(t)``; with ``spike_trains=True`` the
    trains ``[batch, T, ...]`` themselves. Same weights.

    Example:
        >>> act = activity_model(m)                                 # doctest: +SKIP
        >>> act(images)["conv"].shape                               # doctest: +SKIP
        TensorShape([batch, 4, 4, 6])
    """
    import keras

    model = flat(model)
    outputs = {"logits": model.outputs[0]}
    for node in spiking_nodes(model):
        train = node.outputs[0]
        if spike_trains:
            outputs[node.operation.name] = train
        else:
            signed = getattr(node.operation, "neuron", None) is not None and getattr(
                node.operation.neuron, "negative_spikes", False)
            events = keras.ops.abs(train) if signed and not net else train
            outputs[node.operation.name] = keras.ops.sum(events, axis=1)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, outputs, name=f"{model.name}_activity")
