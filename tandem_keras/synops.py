"""Synaptic operations (SynOps), ANN multiply-accumulates and energy (SPEC 6, Eq. 13-14).

The SNN cost counts one accumulate (AC) per spike and outgoing connection
(paper Eq. 13, with ``c_j^l = sum_t s_j^l(t)`` the spike count of neuron ``j``)::

    SynOps_SNN = sum_t sum_l sum_j fanout_j^l * s_j^l(t) = sum_l sum_j fanout_j^l * c_j^l

The fan-out is exact per neuron: a neuron at the border of a feature map feeds fewer
output positions of the next convolution than one in the middle (TensorFlow's "same"
padding puts the extra padding row/column at the bottom/right).

The ANN cost counts one multiply-accumulate (MAC) per incoming connection of every
neuron of every layer (paper Eq. 14)::

    SynOps_ANN = sum_l fanin^l * N^l,   fanin = k_h * k_w * C_in (conv), F_in (dense)

(the nominal fan-in, padding positions included, as the usual MAC counts of a
convolution ``k_h k_w C_in H_out W_out C_out``).

Energy uses 0.9 pJ per AC and 4.6 pJ per MAC (45 nm CMOS, Horowitz 2014).

The pure functions here work on small JSON-able *layer specs* so that an exported
SavedModel can be costed without any model code::

    {"type": "conv2d", "input_shape": [H, W, C], "filters": F,
     "kernel_size": [kh, kw], "strides": [sh, sw], "padding": "same" | "valid"}
    {"type": "dense", "input_shape": [..., F_in], "units": U}

Example:
    >>> import numpy as np
    >>> from tandem_keras import synops
    >>> spec = {"type": "conv2d", "input_shape": [4, 4, 1], "filters": 2,
    ...         "kernel_size": [3, 3], "strides": [1, 1], "padding": "same"}
    >>> synops.fanout(spec)[:, :, 0]          # 2 filters x covered 3x3 taps
    array([[ 8, 12, 12,  8],
           [12, 18, 18, 12],
           [12, 18, 18, 12],
           [ 8, 12, 12,  8]])
    >>> counts = np.ones((1, 4, 4, 1))         # one spike per neuron
    >>> synops.synops_from_counts(counts, synops.fanout(spec))
    array([200.])
    >>> synops.macs(spec)                      # 9 * 1 * (4 * 4 * 2)
    288
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

#: Energy of one accumulate, joules (45 nm, Horowitz 2014).
ENERGY_PER_AC: float = 0.9e-12
#: Energy of one multiply-accumulate, joules (45 nm, Horowitz 2014).
ENERGY_PER_MAC: float = 4.6e-12

LayerSpec = Mapping[str, Any]


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {value!r}")
    return value  # type: ignore[return-value]


def _check_padding(padding: str) -> str:
    padding = str(padding).lower()
    if padding not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
    return padding


def conv_output_length(n_in: int, kernel: int, stride: int, padding: str) -> int:
    """Output length of one spatial axis of a convolution (TensorFlow convention).

    ``same``: ``ceil(n / s)``; ``valid``: ``ceil((n - k + 1) / s)``.

    Example:
        >>> conv_output_length(32, 3, 2, "same"), conv_output_length(224, 11, 4, "valid")
        (16, 54)
    """
    padding = _check_padding(padding)
    if n_in < 1 or kernel < 1 or stride < 1:
        raise ValueError(f"bad convolution axis: n_in={n_in}, kernel={kernel}, stride={stride}")
    if padding == "same":
        return -(-n_in // stride)
    if kernel > n_in:
        raise ValueError(f"kernel {kernel} larger than the input {n_in} with 'valid' padding")
    return -(-(n_in - kernel + 1) // stride)


def axis_coverage(n_in: int, kernel: int, stride: int, padding: str) -> np.ndarray:
    """Number of output positions whose receptive field contains each input position.

    With ``n_out`` from :func:`conv_output_length` and TensorFlow's padding
    ``pad_before = max((n_out - 1) * s + k - n, 0) // 2`` ("same"; 0 for "valid"),
    output ``o`` reads inputs ``o * s - pad_before + i`` for ``i = 0 .. k-1``; the
    coverage of input ``x`` is ``#{o : 0 <= x - o * s + pad_before < k}``.

    Example:
        >>> axis_coverage(5, 3, 2, "same")
        array([1, 2, 1, 2, 1])
    """
    padding = _check_padding(padding)
    n_out = conv_output_length(n_in, kernel, stride, padding)
    pad_before = 0
    if padding == "same":
        pad_before = max((n_out - 1) * stride + kernel - n_in, 0) // 2
    coverage = np.zeros(n_in, dtype=np.int64)
    for o in range(n_out):  # n_out <= a few hundred: a loop over windows is cheap
        start = o * stride - pad_before
        lo, hi = max(start, 0), min(start + kernel, n_in)
        if hi > lo:
            coverage[lo:hi] += 1
    return coverage


def conv2d_fanout(
    input_shape: Sequence[int],
    filters: int,
    kernel_size: int | Sequence[int],
    strides: int | Sequence[int] = 1,
    padding: str = "same",
    dilation_rate: int | Sequence[int] = 1,
) -> np.ndarray:
    """Exact fan-out of every input neuron of a 2D convolution, shape ``[H, W, C]``.

    ``fanout[y, x, c] = filters * coverage_h[y] * coverage_w[x]``
    (see :func:`axis_coverage`); channels-last, as Keras' default.

    Example:
        >>> conv2d_fanout([3, 3, 1], 1, 3, 1, "valid")[:, :, 0]
        array([[1, 1, 1],
               [1, 1, 1],
               [1, 1, 1]])
    """
    if _pair(dilation_rate, "dilation_rate") != (1, 1):
        raise NotImplementedError(f"dilation_rate must be 1, got {dilation_rate!r}")
    if len(input_shape) != 3:
        raise ValueError(f"conv2d input_shape must be [H, W, C], got {list(input_shape)}")
    h, w, c = (int(v) for v in input_shape)
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(strides, "strides")
    cov = np.outer(axis_coverage(h, kh, sh, padding), axis_coverage(w, kw, sw, padding))
    return np.repeat((int(filters) * cov)[:, :, None], c, axis=2)


def dense_fanout(input_shape: Sequence[int], units: int) -> np.ndarray:
    """Fan-out of every input neuron of a dense layer: ``units`` each, shape ``input_shape``.

    Example:
        >>> dense_fanout([3], 4)
        array([4, 4, 4])
    """
    return np.full(tuple(int(v) for v in input_shape), int(units), dtype=np.int64)


def fanout(spec: LayerSpec) -> np.ndarray:
    """Per-neuron fan-out into the layer described by ``spec`` (shape ``spec["input_shape"]``).

    Example:
        >>> fanout({"type": "dense", "input_shape": [2], "units": 5})
        array([5, 5])
    """
    kind = spec.get("type")
    if kind == "conv2d":
        return conv2d_fanout(
            spec["input_shape"], spec["filters"], spec["kernel_size"],
            spec.get("strides", 1), spec.get("padding", "same"), spec.get("dilation_rate", 1),
        )
    if kind == "dense":
        return dense_fanout(spec["input_shape"], spec["units"])
    raise ValueError(f"unknown layer spec type {kind!r} (expected 'conv2d' or 'dense')")


def output_shape(spec: LayerSpec) -> tuple[int, ...]:
    """Output shape (no batch, no time axis) of the layer described by ``spec``.

    Example:
        >>> output_shape({"type": "conv2d", "input_shape": [32, 32, 3], "filters": 8,
        ...               "kernel_size": 3, "strides": 2, "padding": "same"})
        (16, 16, 8)
    """
    kind = spec.get("type")
    if kind == "conv2d":
        h, w, _ = (int(v) for v in spec["input_shape"])
        kh, kw = _pair(spec["kernel_size"], "kernel_size")
        sh, sw = _pair(spec.get("strides", 1), "strides")
        pad = spec.get("padding", "same")
        return (conv_output_length(h, kh, sh, pad), conv_output_length(w, kw, sw, pad),
                int(spec["filters"]))
    if kind == "dense":
        return tuple(int(v) for v in spec["input_shape"][:-1]) + (int(spec["units"]),)
    raise ValueError(f"unknown layer spec type {kind!r} (expected 'conv2d' or 'dense')")


def fanin(spec: LayerSpec) -> int:
    """Nominal fan-in of one neuron: ``k_h * k_w * C_in`` (conv) or ``F_in`` (dense).

    Example:
        >>> fanin({"type": "dense", "input_shape": [1024], "units": 10})
        1024
    """
    kind = spec.get("type")
    if kind == "conv2d":
        kh, kw = _pair(spec["kernel_size"], "kernel_size")
        return kh * kw * int(spec["input_shape"][-1])
    if kind == "dense":
        return int(spec["input_shape"][-1])
    raise ValueError(f"unknown layer spec type {kind!r} (expected 'conv2d' or 'dense')")


def macs(spec: LayerSpec) -> int:
    """ANN multiply-accumulates of one layer for one example (Eq. 14): ``fanin * N``.

    Example:
        >>> macs({"type": "conv2d", "input_shape": [32, 32, 3], "filters": 128,
        ...       "kernel_size": 3, "strides": 1, "padding": "same"})  # 27 * 32*32*128
        3538944
    """
    return fanin(spec) * int(np.prod(output_shape(spec)))


def connections(spec: LayerSpec) -> int:
    """Exact number of connections of a layer (padding excluded): ``sum_j fanout_j``.

    Example:
        >>> connections({"type": "conv2d", "input_shape": [4, 4, 1], "filters": 2,
        ...              "kernel_size": 3, "strides": 1, "padding": "same"})
        200
    """
    return int(fanout(spec).sum())


def synops_from_counts(counts: np.ndarray, fanouts: np.ndarray) -> np.ndarray:
    """SynOps per example from spike counts (Eq. 13 summed over time).

    ``SynOps[b] = sum_j fanout_j * c[b, j]``, ``counts`` shaped ``[batch, *fanouts.shape]``
    (or ``[batch, prod(fanouts.shape)]``, flattened in C order).

    Example:
        >>> synops_from_counts(np.array([[0, 2, 1]]), np.array([3, 3, 1]))
        array([7.])
    """
    counts = np.asarray(counts, dtype=np.float64)
    fanouts = np.asarray(fanouts, dtype=np.float64)
    if counts.ndim < 1 or counts[0].size != fanouts.size:
        raise ValueError(
            f"spike counts of shape {counts.shape} do not match the fan-out shape {fanouts.shape}"
        )
    return counts.reshape(counts.shape[0], -1) @ fanouts.reshape(-1)


def energy_joules(accumulates: float = 0.0, multiply_accumulates: float = 0.0) -> float:
    """Energy estimate: ``0.9 pJ * ACs + 4.6 pJ * MACs`` (joules).

    Example:
        >>> round(energy_joules(1e6, 1e6) * 1e6, 6)   # microjoules
        5.5
    """
    return ENERGY_PER_AC * float(accumulates) + ENERGY_PER_MAC * float(multiply_accumulates)


# ---------------------------------------------------------------------------------------
# From a Keras model: layer specs, the activity model and the SynOps report.
# ---------------------------------------------------------------------------------------

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
