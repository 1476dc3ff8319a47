"""Spiking activity of a Keras model: per-layer specs, spike counts, SynOps report.

Walks a functional Keras model's graph to find its spiking layers (the
``SpikeEncoder`` and the tandem layers) and, for each, the weighted layer(s) that
receive its spikes, through shape-only layers (``TimeFlatten``, ``Dropout``,
``SpikeCount``, ...). From there :mod:`tandem_keras.synops` costs it: exact fan-out
per neuron, SynOps from spike counts, ANN MACs and energy.

* :func:`describe_model`: the layer specs (JSON metadata, also written by ``export_model``);
* :func:`activity_model`: a Keras model returning the logits and every layer's counts;
* :class:`ActivityAccumulator`: sums counts over batches into a per-layer report;
* :func:`count_synops`: all of the above on data; :func:`format_report`: the table.

Example:
    >>> import keras, numpy as np, tandem_keras as tk
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...     tk.SpikeEncoder(2), tk.TandemDense(3), tk.SpikeCount(), keras.layers.Dense(2)])
    >>> report = tk.count_synops(model, np.ones((5, 4), "float32"))
    >>> sorted(report)[:3]
    ['encoder_macs', 'energy_ann_joules', 'energy_snn_joules']
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from tandem_keras.synops import energy_joules, fanout, macs


#: Metadata format written by :func:`describe_model` (and ``export_model``).
METADATA_FORMAT = "tandem_keras.activity/1"

# Layers that only move, drop or sum values: a spike crossing them still reaches the
# same synapses of the next weighted layer.
_TRANSPARENT = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                "GaussianDropout", "GaussianNoise", "AlphaDropout", "Identity", "Flatten",
                "Reshape", "SpikeCount", "TimeFlatten")
# Element-wise analog layers allowed between an encoder's convolution and the SpikeEncoder.
_ANALOG_ELEMENTWISE = _TRANSPARENT + ("BatchNormalization", "Activation", "ReLU",
                                      "Rescaling", "Normalization", "LayerNormalization")


def _class(layer: Any) -> str:
    return type(layer).__name__


def _is_a(layer: Any, names: Sequence[str]) -> bool:
    if _class(layer) == "TimeDistributed":
        return _is_a(layer.layer, names)
    return _class(layer) in names


def _is_spiking(layer: Any) -> bool:
    from tandem_keras.layers import SpikeEncoder, TandemLayer

    return isinstance(layer, (SpikeEncoder, TandemLayer))


def _is_tandem(layer: Any) -> bool:
    from tandem_keras.layers import TandemLayer

    return isinstance(layer, TandemLayer)


def _is_weighted(layer: Any) -> bool:
    """Layers whose MACs and fan-in are counted: Conv2D, Dense and the tandem layers."""
    if _class(layer) == "TimeDistributed":
        return _is_weighted(layer.layer)
    return _is_tandem(layer) or type(layer) in (_keras().layers.Conv2D, _keras().layers.Dense)


def _keras():
    import keras

    return keras


def _static_shape(shape: Sequence[Any], what: str) -> list[int]:
    if any(d is None for d in shape):
        raise ValueError(f"{what} needs static non-batch dimensions, got {tuple(shape)}")
    return [int(d) for d in shape]


def _weighted_spec(node: Any) -> dict:
    """The conv2d/dense spec of a weighted layer call (input shape without batch/time)."""
    layer = node.operation
    time_axis = _is_tandem(layer) or _class(layer) == "TimeDistributed"
    inner = layer.layer if _class(layer) == "TimeDistributed" else layer
    shape = node.input_tensors[0].shape[2 if time_axis else 1:]
    shape = _static_shape(shape, f"layer {layer.name!r}")
    if hasattr(inner, "filters"):
        if len(shape) != 3 or getattr(inner, "data_format", "channels_last") != "channels_last":
            raise NotImplementedError(
                f"layer {layer.name!r}: only channels-last 2D convolutions are supported")
        if tuple(getattr(inner, "dilation_rate", (1, 1))) != (1, 1):
            raise NotImplementedError(f"layer {layer.name!r}: dilation_rate != 1 is not supported")
        if getattr(inner, "groups", 1) != 1:
            raise NotImplementedError(f"layer {layer.name!r}: grouped convolutions are not supported")
        return {"type": "conv2d", "input_shape": shape, "filters": int(inner.filters),
                "kernel_size": [int(k) for k in inner.kernel_size],
                "strides": [int(s) for s in inner.strides], "padding": str(inner.padding).lower()}
    return {"type": "dense", "input_shape": shape, "units": int(inner.units)}


def _walk(model: Any) -> tuple[list, dict]:
    """Topologically ordered call nodes of ``model`` and ``id(tensor) -> consumer nodes``."""
    keras = _keras()
    if not isinstance(model, keras.Model):
        raise ValueError(f"expected a keras.Model, got {type(model).__name__}")
    try:
        outputs = list(model.outputs)
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"model {model.name!r} has no symbolic graph (build a functional or Sequential "
            f"model with keras.Input): {error}") from None
    nodes, seen = [], set()

    def visit(tensor: Any) -> None:
        op, node_index, _ = tensor._keras_history
        if op is None:
            return
        node = op._inbound_nodes[node_index]
        if id(node) in seen:
            return
        seen.add(id(node))
        for parent in node.input_tensors:
            visit(parent)
        if not node.is_input:
            if isinstance(op, keras.Model):
                raise NotImplementedError(
                    f"nested model {op.name!r} inside {model.name!r}: build a flat model")
            nodes.append(node)

    for tensor in outputs:
        visit(tensor)
    consumers: dict = {}
    for node in nodes:
        for tensor in node.input_tensors:
            consumers.setdefault(id(tensor), []).append(node)
    return nodes, consumers


def _fanout_specs(tensor: Any, consumers: dict, source: str, size: int) -> list:
    specs = []
    for node in consumers.get(id(tensor), []):
        layer = node.operation
        if _is_a(layer, _TRANSPARENT):
            specs += _fanout_specs(node.outputs[0], consumers, source, size)
        elif _is_weighted(layer):
            spec = _weighted_spec(node)
            if int(np.prod(spec["input_shape"])) != size:
                raise NotImplementedError(
                    f"spikes of {source!r} reach {layer.name!r} reshaped to "
                    f"{spec['input_shape']} with a different number of neurons")
            spec["layer"] = layer.name
            specs.append(spec)
        else:
            raise NotImplementedError(
                f"cannot count the fan-out of {source!r} into layer {layer.name!r} "
                f"({_class(layer)}); supported consumers: Conv2D, Dense, tandem layers, "
                f"and shape-only layers ({', '.join(_TRANSPARENT)})")
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
        if not _is_a(parent.operation, _ANALOG_ELEMENTWISE) or len(parent.input_tensors) != 1:
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
    and ``inference_time_steps = T + spiking_depth`` (SPEC 5), ``input_shape``,
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
        if _class(node.operation) == "SpikeEncoder":
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
        shape = _static_shape(out.shape[2:] if spiking or _is_tandem(layer) else out.shape[1:],
                              f"layer {layer.name!r}")
        row = {"name": layer.name, "class": _class(layer), "shape": shape,
               "neurons": int(np.prod(shape)), "spiking": spiking, "mac_specs": [],
               "fanout_specs": []}
        if spiking:
            if time_steps is None:
                time_steps = int(getattr(layer, "time_steps", None) or out.shape[1])
            row["fanout_specs"] = _fanout_specs(out, consumers, layer.name, row["neurons"])
        if _class(layer) == "SpikeEncoder":
            row["kind"] = "encoder"
            mac_node = _encoder_macs_layer(node, producers, consumers)
            if mac_node is not None:
                row["mac_specs"] = [dict(_weighted_spec(mac_node), layer=mac_node.operation.name)]
        else:
            row["kind"] = "tandem" if spiking else (
                "readout" if any(after_spikes[id(p)] for p in parents) else "analog")
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
    keras = _keras()
    nodes, _ = _walk(model)
    outputs = {"logits": model.outputs[0]}
    for node in nodes:
        if _is_spiking(node.operation):
            train = node.outputs[0]
            outputs[node.operation.name] = train if spike_trains else keras.ops.sum(train, axis=1)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, outputs, name=f"{model.name}_activity")


def row_fanout(row: Mapping[str, Any]) -> np.ndarray:
    """Exact fan-out of every neuron of a :func:`describe_model` row, shape ``row["shape"]``.

    The sum over all layers its spikes reach (usually one).
    """
    total = np.zeros(int(row["neurons"]), dtype=np.int64)
    for spec in row.get("fanout_specs", []):
        total += fanout(spec).reshape(-1)
    return total.reshape(row["shape"])


class ActivityAccumulator:
    """Accumulates per-layer spike counts over batches and reports SynOps (Eq. 13-14).

    ``update(counts)`` takes ``{layer name: counts [batch, ...]}`` (the output of
    :func:`activity_model` or of the exported ``serve_activity`` endpoint);
    :meth:`report` gives per-example averages. Since Eq. 13 is linear in the counts,
    only the per-neuron sums are kept.

    Example:
        >>> acc = ActivityAccumulator(describe_model(m))           # doctest: +SKIP
        >>> acc.update(activity_model(m)(images)); acc.report()["synops_snn"]  # doctest: +SKIP
    """

    def __init__(self, description: Mapping[str, Any]) -> None:
        if description.get("format") != METADATA_FORMAT:
            raise ValueError(f"not a tandem_keras activity description "
                             f"(format {description.get('format')!r} != {METADATA_FORMAT!r})")
        self.description = description
        self.rows = list(description["layers"])
        self._fanouts = {r["name"]: row_fanout(r).reshape(-1) for r in self.rows if r["spiking"]}
        self._sums = {name: np.zeros(f.size) for name, f in self._fanouts.items()}
        self.num_examples = 0

    def update(self, counts: Mapping[str, Any]) -> None:
        batch = None
        for name in self._sums:
            if name not in counts:
                raise KeyError(f"spike counts of layer {name!r} missing "
                               f"(got {sorted(k for k in counts if k != 'logits')})")
            c = np.asarray(counts[name], dtype=np.float64)
            c = c.reshape(c.shape[0], -1)
            if c.shape[1] != self._sums[name].size:
                raise ValueError(f"layer {name!r}: counts have {c.shape[1]} neurons, "
                                 f"expected {self._sums[name].size}")
            if batch is not None and c.shape[0] != batch:
                raise ValueError("spike counts of different layers have different batch sizes")
            batch = c.shape[0]
            self._sums[name] += c.sum(axis=0)
        self.num_examples += int(batch or 0)

    def mean_counts(self, name: str) -> np.ndarray:
        """Average spike count of every neuron of layer ``name``, shape ``row["shape"]``."""
        row = next(r for r in self.rows if r["name"] == name)
        return (self._sums[name] / max(self.num_examples, 1)).reshape(row["shape"])

    def report(self) -> dict:
        """Per-example SynOps, MACs, ratio, energy, and a row per layer (see module doc).

        ``synops_snn`` counts accumulates of spikes (Eq. 13); the encoder's analog MACs
        (its convolution on the image, computed once) are ``encoder_macs``, not in
        ``synops_snn``; ``synops_ann`` is Eq. 14 over all layers, encoder included;
        ``synops_ratio = synops_snn / synops_ann`` (and ``synops_ratio_with_encoder =
        (synops_snn + encoder_macs) / synops_ann``, counting the encoder's MACs as SNN work).
        ``energy_snn_joules = 0.9 pJ * synops_snn + 4.6 pJ * encoder_macs``,
        ``energy_ann_joules = 4.6 pJ * synops_ann``.
        """
        n = max(self.num_examples, 1)
        t = int(self.description["time_steps"])
        layers = []
        for row in self.rows:
            entry = {"name": row["name"], "kind": row["kind"], "neurons": row["neurons"],
                     "avg_spike_count": None, "firing_rate": None, "mean_fanout": 0.0,
                     "synops": 0.0, "ann_macs": row["macs"]}
            if row["spiking"]:
                sums, fan = self._sums[row["name"]], self._fanouts[row["name"]]
                entry["avg_spike_count"] = float(sums.sum() / n / row["neurons"])
                entry["firing_rate"] = entry["avg_spike_count"] / t
                entry["mean_fanout"] = float(fan.mean())
                entry["synops"] = float(sums @ fan / n)
            layers.append(entry)
        snn = float(sum(e["synops"] for e in layers))
        ann = int(sum(r["macs"] for r in self.rows))
        encoder = int(sum(r["macs"] for r in self.rows if r["kind"] in ("encoder", "analog")))
        return {
            "examples": self.num_examples,
            "time_steps": t,
            "inference_time_steps": int(self.description["inference_time_steps"]),
            "synops_snn": snn,
            "synops_ann": ann,
            "synops_ratio": snn / ann if ann else float("nan"),
            "encoder_macs": encoder,
            "synops_ratio_with_encoder": (snn + encoder) / ann if ann else float("nan"),
            "energy_snn_joules": energy_joules(snn, encoder),
            "energy_ann_joules": energy_joules(0.0, ann),
            "layers": layers,
        }


def count_synops(model: Any, x: Any, batch_size: int = 64) -> dict:
    """SynOps of ``model`` on inputs ``x`` (per example), walking the Keras graph.

    ``x``: an array of inputs (run in batches of ``batch_size``) or a ``tf.data.Dataset``
    of input batches or ``(inputs, labels)`` batches.

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
    return accumulator.report()


def format_report(report: Mapping[str, Any]) -> str:
    """An aligned text table of a SynOps report (like ``model.summary()``)."""
    header = ("layer", "kind", "neurons", "spikes/neuron", "rate", "fan-out", "SynOps", "ANN MACs")
    lines = []
    for e in report["layers"]:
        spikes = "-" if e["avg_spike_count"] is None else f"{e['avg_spike_count']:.3f}"
        rate = "-" if e["firing_rate"] is None else f"{e['firing_rate']:.3f}"
        lines.append((e["name"], e["kind"], f"{e['neurons']:,}", spikes, rate,
                      f"{e['mean_fanout']:.1f}", f"{e['synops']:,.0f}", f"{e['ann_macs']:,}"))
    widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    rule = "-" * len(fmt(header))
    out = [fmt(header), rule] + [fmt(r) for r in lines] + [rule]
    out.append(f"SynOps per example: SNN {report['synops_snn']:,.0f} ACs "
               f"(+ encoder {report['encoder_macs']:,} MACs), ANN {report['synops_ann']:,} MACs, "
               f"ratio {report['synops_ratio']:.3f}")
    out.append(f"Energy per example: SNN {report['energy_snn_joules']:.3e} J, "
               f"ANN {report['energy_ann_joules']:.3e} J")
    return "\n".join(out)
