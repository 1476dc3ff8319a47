"""NIR nodes of the layers (NIR is channels-first): the mappings the registry of layer kinds
(:mod:`tandem_keras.kinds`) names as a layer's ``nir`` (a layer call: ``(builder, layer,
ports, out_shape) -> port``) and ``nir_linear`` (the synapse node of a linear map, shared by
a Keras layer and its tandem version), and the arithmetic they share (zero-embedded kernels,
TensorFlow's border average), each exact as the layer computes in inference (BN folded with
the moving statistics, per-step bias ``b'/T``). The graph they build: :mod:`tandem_keras.nir`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import keras
import numpy as np

from tandem_keras import kinds
from tandem_keras.nir import Builder, Part, Port, channels_first, in_channels, port, unsupported
from tandem_keras.synops import ops


def conv_weight(layer: Any, kernel: np.ndarray, spatial: Sequence[int]):
    """``(weight, padding, dilation)`` of a channels-last ``kernel`` ``[k..., I, O]`` for NIR:
    the weight ``[O, I, k...]``, symmetric integer padding and dilation reproducing
    ``layer``'s convolution on ``spatial``.

    TensorFlow pads ``'same'`` asymmetrically when the total is odd (one more after) and
    ``'causal'`` before only; NIR pads symmetrically, so the kernel gets zeros before (or
    after) it and the larger padding goes on both sides: the same products, exactly.
    """
    rank = len(spatial)
    weight = np.transpose(kernel, (rank + 1, rank) + tuple(range(rank)))   # -> [O, I, k...]
    dilation = tuple(int(d) for d in layer.dilation_rate)
    pads = [ops.pads(n, k, s, str(layer.padding).lower(), d) for n, k, s, d in
            zip(spatial, layer.kernel_size, layer.strides, dilation)]
    if all(before == after for before, after in pads):
        return np.ascontiguousarray(weight), tuple(p[0] for p in pads), dilation
    if max(dilation) > 1:  # materialize the dilation so that one zero tap is one position
        dense = np.zeros(weight.shape[:2] + tuple((k - 1) * d + 1 for k, d in
                                                  zip(weight.shape[2:], dilation)), weight.dtype)
        dense[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dilation)] = weight
        weight, dilation = dense, (1,) * rank
    widths = [(max(after - before, 0), max(before - after, 0)) for before, after in pads]
    weight = np.pad(weight, ((0, 0), (0, 0)) + tuple(widths))
    return np.ascontiguousarray(weight), tuple(max(p) for p in pads), dilation


def conv_node(nir: Any, spatial: Sequence[int], weight: np.ndarray, strides, padding, dilation,
              groups: int, bias: np.ndarray) -> Any:
    """``nir.Conv1d`` or ``nir.Conv2d`` (by the number of spatial axes)."""
    if len(spatial) == 1:
        return nir.Conv1d(input_shape=int(spatial[0]), weight=weight, stride=int(strides[0]),
                          padding=int(padding[0]), dilation=int(dilation[0]), groups=groups, bias=bias)
    return nir.Conv2d(input_shape=tuple(int(n) for n in spatial), weight=weight,
                      stride=tuple(int(s) for s in strides), padding=tuple(int(p) for p in padding),
                      dilation=tuple(int(d) for d in dilation), groups=groups, bias=bias)


def conv_output_shape(layer: Any, spatial: Sequence[int]) -> tuple:
    """The spatial output shape of ``layer``'s convolution on ``spatial``."""
    return tuple(ops.conv_output_length(n, k, s, str(layer.padding).lower(), d) for n, k, s, d in
                 zip(spatial, layer.kernel_size, layer.strides, layer.dilation_rate))


def pooling(nir: Any, layer: Any, spatial: tuple[int, int], channels: int) -> tuple[list, Optional[str]]:
    """``[(suffix, node), ...]`` of an average pooling over ``spatial``, or ``([], why)``.

    ``"valid"``: ``AvgPool2d``. ``"same"`` with symmetric padding: ``SumPool2d`` then a
    ``Scale`` by 1 / (the number of the window's elements inside the image), TensorFlow's
    border average. An asymmetric ``"same"`` padding has no NIR equivalent.
    """
    kernel = np.array(layer.pool_size, dtype=np.int64)
    stride = np.array(layer.strides or layer.pool_size, dtype=np.int64)
    if layer.padding == "valid":
        return [("", nir.AvgPool2d(kernel_size=kernel, stride=stride, padding=np.zeros(2, np.int64)))], None
    pads = [ops.pads(int(n), int(k), int(s), "same") for n, k, s in zip(spatial, kernel, stride)]
    if any(before != after for before, after in pads):
        return [], (f"TensorFlow pads its 'same' window {tuple(int(k) for k in kernel)} with stride "
                    f"{tuple(int(s) for s in stride)} on {tuple(spatial)} more after than before, "
                    "which NIR's symmetric padding cannot express; use padding='valid' or an input "
                    "size that TensorFlow pads evenly")
    counts = []
    for n, k, s, (p, _) in zip(spatial, kernel, stride, pads):
        starts = np.arange(-(-n // s)) * s - p
        counts.append(np.minimum(starts + k, n) - np.maximum(starts, 0))
    inside = np.outer(counts[0], counts[1]).astype(np.float32)
    scale = np.broadcast_to(1.0 / inside, (channels,) + inside.shape)
    return [("", nir.SumPool2d(kernel_size=kernel, stride=stride, padding=np.array([p[0] for p in pads]))),
            ("_scale", nir.Scale(scale=np.ascontiguousarray(scale, np.float32)))], None


def global_pooling(nir: Any, spatial: tuple[int, int]) -> Any:
    """Global average pooling: ``AvgPool2d`` over the whole map (output ``[C, 1, 1]``)."""
    kernel = np.array(spatial, dtype=np.int64)
    return nir.AvgPool2d(kernel_size=kernel, stride=kernel, padding=np.zeros(2, np.int64))


# --------------------------------------------------------------- the layers' mappings
def pass_through(b: Builder, layer: Any, ports: list, out_shape: tuple) -> Port:
    """``Dropout`` and other layers that are the identity at inference."""
    return ports[0]


def flatten(b: Builder, layer: Any, ports: list, out_shape: tuple) -> Port:
    """``TimeDistributed(Flatten)``, or ``Flatten`` of counts: :func:`time_flatten`."""
    if kinds.unwrap(layer) is layer and not ports[0].counted:
        raise unsupported(layer, "a Flatten of a spike train flattens its time axis too; use "
                                 "tk.TimeFlatten or TimeDistributed(Flatten).")
    return time_flatten(b, layer, ports, out_shape)


def time_flatten(b: Builder, layer: Any, ports: list, out_shape: tuple) -> Port:
    """``TimeFlatten``: ``Flatten`` over ``(C, H, W)`` (per part)."""
    p = ports[0]
    if p.flat or len(p.shape) == 1:
        return p
    flat = b.per_part(layer, p, lambda part, name, shape: b.flatten(name, part, shape))
    return dataclasses.replace(flat, shape=(int(np.prod(p.shape)),))


def spike_count(b: Builder, layer: Any, ports: list, out_shape: tuple) -> Port:
    """``SpikeCount``: the graph's output is summed over the steps by the reader; later
    layers act on every step (the readout, pooling of counts)."""
    return dataclasses.replace(ports[0], counted=True)


def add(b: Builder, layer: Any, ports: list, out_shape: tuple) -> Port:
    """A Keras ``Add`` of counts (a readout's): the sum of the inputs' edges."""
    if len({(p.shape, p.flat, p.counted, len(p.parts)) for p in ports}) != 1 or len(ports[0].parts) != 1:
        raise unsupported(layer, "its inputs differ in shape or layout.")
    return port(sum((p.sources for p in ports), ()), ports[0].shape, counted=ports[0].counted)


def avg_pool(b: Builder, layer: Any, ports: list, out_shape: tuple) -> Port:
    """Average pooling: ``AvgPool2d`` (``'valid'``), or ``SumPool2d`` + ``Scale`` by the
    number of the window's elements inside the image (``'same'``)."""
    p = ports[0]
    if len(p.shape) != 3 or p.flat:
        raise unsupported(layer, f"its input has shape {p.shape}, not (H, W, C).")

    def make(part, name, shape):
        nodes, why = pooling(b.nir, kinds.unwrap(layer), shape[:2], part.channels)
        if why:
            raise unsupported(layer, why + ".")
        sources = part.sources
        for suffix, node in nodes:
            sources = (b.add(name + suffix, node, sources),)
        return Part(sources, 0, part.channels), tuple(out_shape[:-1]) + (part.channels,)

    return b.per_part(layer, p, make)


def global_avg_pool(b: Builder, layer: Any, ports: list, out_shape: tuple) -> Port:
    """Global average pooling: ``AvgPool2d`` over the map, then ``Flatten`` (unless
    ``keepdims``)."""
    p = ports[0]
    if len(p.shape) != 3 or p.flat:
        raise unsupported(layer, f"its input has shape {p.shape}, not (H, W, C).")
    keepdims = getattr(kinds.unwrap(layer), "keepdims", False)

    def make(part, name, shape):
        pooled = (b.add(name, global_pooling(b.nir, shape[:2]), part.sources),)
        part = Part(pooled, 0, part.channels)
        if keepdims:
            return part, (1, 1, part.channels)
        flat, _ = b.flatten(name + "_flatten", part, (1, 1, part.channels))
        return dataclasses.replace(flat, spatial=()), (part.channels,)

    return b.per_part(layer, p, make)


def concatenate(b: Builder, layer: Any, ports: list, out_shape: tuple) -> Port:
    """``Concatenate`` on the channel axis: no node; its parts go on as their own edges
    (into the next weighted layer, with the weights of their channels)."""
    rank = len(ports[0].shape)
    axis = int(layer.axis)
    if axis not in (-1, rank + 1) or len({p.shape[:-1] for p in ports}) != 1 or any(
            p.flat for p in ports) or len({p.counted for p in ports}) != 1:
        raise unsupported(layer, "only a concatenation of trains on the channel axis exports "
                                 "(NIR has no concatenation node).")
    parts, offset = [], 0
    for p in ports:
        for part in p.parts:
            parts.append(dataclasses.replace(part, offset=offset + part.offset))
        offset += p.shape[-1]
    return Port(tuple(parts), ports[0].shape[:-1] + (offset,), all(p.spiking for p in ports),
                ports[0].counted)


def readout(b: Builder, layer: Any, ports: list, out_shape: tuple) -> Port:
    """A Keras ``Dense`` on the counts (membrane decoding): ``Affine`` (``W^T``, ``b/T``) per
    step; logits = the graph's output summed over the steps."""
    if layer.activation not in (None, keras.activations.linear):
        raise unsupported(layer, "the readout Dense must have no activation (logits).")
    kernel = np.asarray(layer.kernel, np.float32)
    bias = np.asarray(layer.bias, np.float32) if layer.use_bias else np.zeros(kernel.shape[-1], np.float32)
    ends = b.linear(layer, ports[0], [kernel], bias / np.float32(b.time_steps))
    return port(ends, out_shape, counted=ports[0].counted)


def tandem_layer(b: Builder, layer: Any, ports: list, out_shape: tuple) -> Port:
    """A tandem layer: its synapse node(s) with the BN-folded weights (moving statistics) and
    the per-step bias ``b'/T``, then (unless ``neuron=None``) its neuron node ``<name>_if``."""
    kernel, bias = layer.folded_weights()
    kernels = kernel if isinstance(kernel, (tuple, list)) else (kernel,)
    weights = [np.asarray(k, np.float32) for k in kernels]
    step_bias = np.asarray(bias, np.float32) / np.float32(b.time_steps) + _extra_current(layer, b.time_steps)
    ends = b.linear(layer, ports[0], weights, step_bias)
    if layer.neuron is None:
        return port(ends, out_shape)
    return b.neurons(layer, out_shape, ends)


def tandem_add(b: Builder, layer: Any, ports: list, out_shape: tuple) -> Port:
    """``TandemAdd``: one neuron node with an edge from each input (a ``Scale`` node
    ``<name>_scale<i>`` for a weight ``w_i != 1``)."""
    scales = layer.current_scales or [1.0] * len(ports)
    sources = []
    for i, (p, w) in enumerate(zip(ports, scales)):
        if len(p.parts) != 1:
            raise unsupported(layer, "a concatenation reaches it (NIR has no concatenation node).")
        if w != 1.0:
            scale = np.full(tuple(channels_first(p.shape)), w, np.float32)
            sources.append((b.add(f"{layer.name}_scale{i}", b.nir.Scale(scale=scale), p.sources),))
        else:
            sources.append(p.sources)
    extra = _extra_current(layer, b.time_steps)
    if extra:   # a constant current: a zero-weight synapse with that bias, fed by input 0
        c, spatial = int(out_shape[-1]), tuple(out_shape[:-1])
        bias = np.full(c, extra, np.float32)
        node = (b.nir.Affine(weight=np.zeros((c, c), np.float32), bias=bias) if not spatial else
                conv_node(b.nir, spatial, np.zeros((c, c) + (1,) * len(spatial), np.float32),
                          (1,) * len(spatial), (0,) * len(spatial), (1,) * len(spatial), 1, bias))
        sources.append((b.add(f"{layer.name}_rounding", node, ports[0].sources),))
    return b.neurons(layer, out_shape, *sources)


def _extra_current(layer: Any, time_steps: int) -> np.float32:
    """The neuron's constant current ``(rounding - initial_potential) theta / T`` (method §3)."""
    if layer.neuron is None:
        return np.float32(0.0)
    return np.float32(layer.neuron.rounding_current(layer.threshold, time_steps))


def max_pool(b: Builder, layer: Any, ports: list, out_shape: tuple) -> Port:
    raise unsupported(layer, "NIR 1.0 has no max-pooling node; use average pooling "
                             "(tk.AveragePooling2D), which exports as AvgPool2d / SumPool2d.")


# ------------------------------------------------------------ synapse nodes of linear maps
def dense_synapses(b: Builder, layer: Any, weights: list, bias: np.ndarray, port_: Port,
                   part: Part, name: str) -> str:
    """``Affine`` (``W^T``, bias) of a dense map; after a flatten, the rows of the part's
    channels reordered from Keras's ``(h, w, c)`` to ``(c, h, w)``."""
    kernel = weights[0]
    if len(port_.shape) != 1:
        raise unsupported(layer, f"its input has shape {port_.shape}; flatten it first (TimeFlatten).")
    if part.spatial:  # rows of (positions, all channels) -> this part's (c, positions)
        total = kernel.shape[0] // int(np.prod(part.spatial))
        kernel = kernel.reshape(part.spatial + (total, -1))
        kernel = in_channels(kernel, port_, part)
        kernel = np.moveaxis(kernel, -2, 0).reshape(-1, kernel.shape[-1])
    else:
        kernel = kernel[part.offset:part.offset + part.channels]
    return b.add(name, b.nir.Affine(weight=np.ascontiguousarray(kernel.T), bias=bias), part.sources)


def conv_synapses(b: Builder, layer: Any, weights: list, bias: np.ndarray, port_: Port,
                  part: Part, name: str) -> str:
    """``Conv1d`` / ``Conv2d`` of a convolution (``groups=1``); TensorFlow's asymmetric
    padding (``'same'`` with an odd total, ``'causal'``) by a zero-embedded kernel."""
    rank = len(layer.kernel_size)
    if len(port_.shape) != rank + 1 or port_.flat:
        raise unsupported(layer, f"its input has shape {port_.shape}, not {rank} spatial axes and channels.")
    kernel = in_channels(weights[0], port_, part)
    weight, padding, dilation = conv_weight(layer, kernel, port_.shape[:-1])
    return b.add(name, conv_node(b.nir, port_.shape[:-1], weight, layer.strides, padding,
                                            dilation, 1, bias), part.sources)


def depthwise_synapses(b: Builder, layer: Any, weights: list, bias: np.ndarray, port_: Port,
                       part: Part, name: str) -> str:
    """A depthwise convolution: ``Conv2d`` with ``groups`` = its input channels (output
    channel ``c m + j`` reads input channel ``c``, as Keras's)."""
    kernel = in_channels(weights[0], port_, part)              # [kh, kw, C, m]
    if len(port_.parts) != 1:
        raise unsupported(layer, "a concatenation reaches it (NIR has no concatenation node).")
    kh, kw, c, m = kernel.shape
    grouped = kernel.reshape(kh, kw, 1, c * m)                  # HWIO with I = 1 per group
    weight, padding, dilation = conv_weight(layer, grouped, port_.shape[:-1])
    return b.add(name, conv_node(b.nir, port_.shape[:-1], weight, layer.strides, padding,
                                            dilation, c, bias), part.sources)


def separable_synapses(b: Builder, layer: Any, weights: list, bias: np.ndarray, port_: Port,
                       part: Part, name: str) -> str:
    """A separable convolution: two nodes, the depthwise ``Conv2d`` (``groups``, no bias)
    ``<name>_depthwise`` and the pointwise 1x1 ``Conv2d`` ``<name>`` with the bias."""
    depthwise, pointwise = weights
    depthwise = in_channels(depthwise, port_, part)             # [kh, kw, C_part, m]
    kh, kw, c, m = depthwise.shape
    start = part.offset * m
    pointwise = pointwise[:, :, start:start + c * m]             # the part's depthwise outputs
    weight, padding, dilation = conv_weight(layer, depthwise.reshape(kh, kw, 1, c * m),
                                                       port_.shape[:-1])
    spatial = tuple(port_.shape[:-1])
    first = b.add(name + "_depthwise", conv_node(
        b.nir, spatial, weight, layer.strides, padding, dilation, c, np.zeros(c * m, np.float32)),
        part.sources)
    out_spatial = tuple(conv_output_shape(layer, spatial))
    point = np.ascontiguousarray(np.transpose(pointwise, (3, 2, 0, 1)))
    return b.add(name, conv_node(b.nir, out_spatial, point, (1, 1), (0, 0), (1, 1), 1, bias),
                 (first,))


def spike_count_output(b: Builder, layer: Any, ports: list, out_shape: tuple) -> Port:
    """``tk.decoding.SpikeCountOutput``: its tie rule reads the final membrane potential,
    which NIR's neurons do not output."""
    raise unsupported(layer, f"the model's decoding is {layer.decoding} ({layer.decoding_description}), "
                             "which NIR's IF neurons cannot express: export its decode='spike_count' "
                             "model (the same trained weights without the tie rule) or a "
                             "membrane-decoded one.")
