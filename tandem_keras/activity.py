"""Spiking activity of a Keras model: per-layer specs, spike counts, SynOps report.

Walks a functional Keras model's graph to find its spiking layers (the
``SpikeEncoder`` and the tandem layers) and, for each, the weighted layer(s) that
receive its spikes, through shape-only layers (``TimeFlatten``, ``Dropout``,
``SpikeCount``, ...). From there :mod:`tandem_keras.synops` costs it: exact fan-out
per neuron, SynOps from spike counts, ANN MACs and energy.

* :func:`describe_model`: the layer specs (JSON metadata, also written by ``export_model``);
* :func:`activity_model`: a Keras model returning the logits and every layer's counts;
* :class:`ActivityAccumulator` (:mod:`tandem_keras.accounting`): sums counts over batches
  into a per-layer report;
* :func:`count_synops`: all of the above on data (the tables: :mod:`tandem_keras.tables`).

Which layers spike, carry synapses or only pass spikes on is asked of
:mod:`tandem_keras.registry` (``tk.register_layer`` adds a user's own layers).

Example:
    >>> import keras, numpy as np, tandem_keras as tk
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...     tk.SpikeEncoder(2), tk.TandemDense(3), tk.SpikeCount(), keras.layers.Dense(2)])
    >>> report = tk.count_synops(model, np.ones((5, 4), "float32"))
    >>> sorted(report)[:3]
    ['device', 'encoder_macs', 'energy_ann_joules']
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from tandem_keras import registry
from tandem_keras._keras_internals import call_nodes as _walk
from tandem_keras.accounting import METADATA_FORMAT, ActivityAccumulator, row_fanout  # noqa: F401
from tandem_keras.synops import macs


def _class(layer: Any) -> str:
    return type(registry.unwrap(layer)).__name__


def _role(layer: Any) -> Any:
    return registry.layer_role(layer)


def _is_spiking(layer: Any) -> bool:
    """Layers whose output spike trains ``[batch, T, ...]`` are counted."""
    return _role(layer) in ("encoder", "spiking", "spiking_weighted")


def _is_encoder(layer: Any) -> bool:
    return _role(layer) == "encoder"


def _has_time_input(layer: Any) -> bool:
    """Weighted layers fed ``[batch, T, ...]``: spiking-weighted ones, or TimeDistributed."""
    return _role(layer) == "spiking_weighted" or registry.unwrap(layer) is not layer


def _is_weighted(layer: Any) -> bool:
    """Layers whose MACs and fan-in are counted (registered with a spec function)."""
    return _role(layer) in ("weighted", "spiking_weighted")


def _is_transparent(layer: Any) -> bool:
    return _role(layer) == "transparent"


def _is_elementwise(layer: Any) -> bool:
    return _role(layer) in ("transparent", "elementwise")


def _static_shape(shape: Sequence[Any], what: str) -> list[int]:
    if any(d is None for d in shape):
        raise ValueError(f"{what} needs static non-batch dimensions, got {tuple(shape)}")
    return [int(d) for d in shape]


def _weighted_spec(node: Any) -> dict:
    """The layer spec of a weighted layer call (input shape without batch/time)."""
    layer = node.operation
    shape = node.input_tensors[0].shape[2 if _has_time_input(layer) else 1:]
    shape = _static_shape(shape, f"layer {layer.name!r}")
    inner = registry.unwrap(layer)
    spec = registry.layer_rule(inner).spec(inner, shape)
    if spec.get("type") not in ("conv2d", "dense"):
        raise ValueError(f"layer {layer.name!r}: its registered spec function returned "
                         f"type {spec.get('type')!r}, expected 'conv2d' or 'dense'")
    return spec


def _fanout_specs(tensor: Any, consumers: dict, source: str, size: int) -> list:
    specs = []
    for node in consumers.get(id(tensor), []):
        layer = node.operation
        if _is_transparent(layer):
            specs += _fanout_specs(node.outputs[0], consumers, source, size)
        elif _is_weighted(layer):
            spec = _weighted_spec(node)
            if int(np.prod(spec["input_shape"])) != size:
                raise NotImplementedError(
                    f"spikes of {source!r} reach {layer.name!r} reshaped to "
                    f"{spec['input_shape']} with a different number of neurons")
            spec["layer"] = layer.name
            specs.append(spec)
        elif _is_spiking(layer):
            continue  # a spiking layer without synapses of its own: no SynOps into it
        else:
            raise NotImplementedError(
                f"cannot count the fan-out of {source!r} into layer {layer.name!r} "
                f"({_class(layer)}); register its role with tk.register_layer "
                f"(supported: Conv2D, Dense, tandem layers, shape-only layers)")
    return specs


def _encoder_macs_layer(node: Any, producers: dict, consumers: dict) -> Any:
    """The Conv2D/Dense call feeding a SpikeEncoder through element-wise layers, or None."""
    tensor = node.input_tensors[0]
    while id(tensor) in producers:
        parent = producers[id(tensor)]
        if len(consumers.get(id(tensor), [])) != 1:
            return None
        if _is_weighted(parent.operation):
            return parent
        if not _is_elementwise(parent.operation) or len(parent.input_tensors) != 1:
            return None
        tensor = parent.input_tensors[0]
    return None


def describe_model(model: Any) -> dict:
    """JSON-able description of a tandem model for SynOps accounting (no weights).

    One row per *paper layer*, in graph order: every spiking layer (``SpikeEncoder``,
    ``TandemConv2D``, ``TandemDense``) and every other ``Conv2D``/``Dense``. Each row
    holds its neuron shape, the MAC spec of its own weights (``mac_specs``; an encoder's
    analog ``Conv2D`` is merged into the ``SpikeEncoder`` row) and, for spiking rows,
    the specs of the weighted layers its spikes reach (``fanout_specs``, found through
    shape-only layers such as ``TimeFlatten``, ``Dropout``, ``SpikeCount``).
    ``kind`` is ``"encoder"``, ``"tandem"``, ``"analog"`` (weighted, before any spike)
    or ``"readout"`` (weighted, fed by spikes, not spiking).

    Also: ``time_steps`` (T), ``spiking_depth`` (spiking layers on the longest path)
    and ``inference_time_steps = T + spiking_depth`` (method §5), ``input_shape``,
    ``num_classes``.

    Example:
        >>> import keras, tandem_keras as tk
        >>> m = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, padding="same"),
        ...     tk.SpikeEncoder(4, name="enc"), tk.TandemConv2D(6, 3, strides=2, name="conv"),
        ...     tk.SpikeCount(), keras.layers.Flatten(), keras.layers.Dense(10, name="out")])
        >>> d = describe_model(m)
        >>> [(r["name"], r["kind"], r["macs"]) for r in d["layers"]]
        [('enc', 'encoder', 6912), ('conv', 'tandem', 3456), ('out', 'readout', 960)]
        >>> d["inference_time_steps"]
        6
    """
    nodes, consumers = _walk(model)
    producers = {id(t): node for node in nodes for t in node.outputs}
    merged, rows, depth, after_spikes = set(), [], {}, {}
    for node in nodes:
        if _is_encoder(node.operation):
            mac_node = _encoder_macs_layer(node, producers, consumers)
            if mac_node is not None:
                merged.add(id(mac_node))
    time_steps = None
    for node in nodes:
        layer = node.operation
        parents = [producers[id(t)] for t in node.input_tensors if id(t) in producers]
        spiking = _is_spiking(layer)
        depth[id(node)] = max([depth[id(p)] for p in parents], default=0) + int(spiking)
        after_spikes[id(node)] = spiking or any(after_spikes[id(p)] for p in parents)
        if not (spiking or _is_weighted(layer)) or id(node) in merged:
            continue
        out = node.outputs[0]
        shape = _static_shape(out.shape[2:] if spiking or _has_time_input(layer) else out.shape[1:],
                              f"layer {layer.name!r}")
        row = {"name": layer.name, "class": _class(layer), "shape": shape,
               "neurons": int(np.prod(shape)), "spiking": spiking, "mac_specs": [],
               "fanout_specs": []}
        if spiking:
            if time_steps is None:
                time_steps = int(getattr(layer, "time_steps", None) or out.shape[1])
            row["fanout_specs"] = _fanout_specs(out, consumers, layer.name, row["neurons"])
        if _is_encoder(layer):
            row["kind"] = "encoder"
            mac_node = _encoder_macs_layer(node, producers, consumers)
            if mac_node is not None:
                row["mac_specs"] = [dict(_weighted_spec(mac_node), layer=mac_node.operation.name)]
        else:
            row["kind"] = ("tandem" if _is_weighted(layer) else "spiking") if spiking else (
                "readout" if any(after_spikes[id(p)] for p in parents) else "analog")
            if _is_weighted(layer):
                row["mac_specs"] = [dict(_weighted_spec(node), layer=layer.name)]
        row["macs"] = int(sum(macs(s) for s in row["mac_specs"]))
        rows.append(row)
    if time_steps is None:
        raise ValueError(f"model {model.name!r} has no spiking layer (SpikeEncoder / Tandem*)")
    spiking_depth = max(depth.values(), default=0)
    outputs = model.outputs
    return {
        "format": METADATA_FORMAT,
        "model_name": model.name,
        "time_steps": time_steps,
        "spiking_depth": spiking_depth,
        "inference_time_steps": time_steps + spiking_depth,
        "input_shape": _static_shape(model.inputs[0].shape[1:], "model input"),
        "num_classes": int(outputs[0].shape[-1]),
        "layers": rows,
    }


def activity_model(model: Any, spike_trains: bool = False) -> Any:
    """A functional model ``x -> {"logits": model(x), <layer name>: counts, ...}``.

    Counts are ``c = sum_t s(t)`` of every spiking layer, ``[batch, ...]``; with
    ``spike_trains=True`` the trains ``[batch, T, ...]`` themselves. Same weights.

    Example:
        >>> act = activity_model(m)                                 # doctest: +SKIP
        >>> act(images)["tandem_conv2d"].shape                      # doctest: +SKIP
        TensorShape([batch, 4, 4, 6])
    """
    import keras

    nodes, _ = _walk(model)
    outputs = {"logits": model.outputs[0]}
    for node in nodes:
        if _is_spiking(node.operation):
            train = node.outputs[0]
            outputs[node.operation.name] = train if spike_trains else keras.ops.sum(train, axis=1)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, outputs, name=f"{model.name}_activity")


def count_synops(model: Any, x: Any, batch_size: int = 64, device: Any = None) -> dict:
    """SynOps of ``model`` on inputs ``x`` (per example), walking the Keras graph.

    ``x``: an array of inputs (run in batches of ``batch_size``) or a ``tf.data.Dataset``
    of input batches or ``(inputs, labels)`` batches. ``device``: energy figures of a
    registered device (default ``"horowitz_45nm"``).

    ``SynOps_SNN = sum_l sum_j fanout_j^l c_j^l`` averaged over the examples of ``x``
    (Eq. 13), against ``SynOps_ANN = sum_l fanin^l N^l`` (Eq. 14); see
    :meth:`ActivityAccumulator.report` for the keys.

    Example:
        >>> import numpy as np, keras, tandem_keras as tk
        >>> m = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2),
        ...                       tk.TandemDense(3, batch_norm=False), tk.SpikeCount()])
        >>> r = count_synops(m, np.array([[2., 0., 1., 5.]], "float32"))
        >>> r["synops_snn"]        # encoder spikes 2+0+1+2 = 5, each reaching 3 neurons
        15.0
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    accumulator = ActivityAccumulator(describe_model(model))
    act = activity_model(model)
    if hasattr(x, "as_numpy_iterator"):  # a tf.data.Dataset of batches (or (x, y) batches)
        batches = (b[0] if isinstance(b, (tuple, list)) else b for b in x.as_numpy_iterator())
    else:
        x = np.asarray(x)
        batches = (x[i:i + int(batch_size)] for i in range(0, len(x), int(batch_size)))
    for batch in batches:
        outputs = act(batch, training=False)
        accumulator.update({k: np.asarray(v) for k, v in outputs.items() if k != "logits"})
    if accumulator.num_examples == 0:
        raise ValueError("count_synops got no examples")
    return accumulator.report(device)
