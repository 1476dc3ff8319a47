"""Operation specs: what one operation of a spike's path connects, its output shape and MACs.

An operation is a small JSON-able *spec* (``input_shape`` without batch and time axes)::

    {"type": "conv2d", "input_shape": [H, W, C], "filters": F, "kernel_size": [kh, kw],
     "strides": [sh, sw], "padding": "same" | "valid", "dilation_rate": [dh, dw]}
    {"type": "conv1d", "input_shape": [L, C], ..., "padding": "same" | "valid" | "causal"}
    {"type": "depthwise_conv2d", ..., "depth_multiplier": M}   (no "filters")
    {"type": "separable_conv2d", ..., "depth_multiplier": M, "filters": F}
    {"type": "dense", "input_shape": [..., F_in], "units": U}
    {"type": "identity", "input_shape": [...]}         one synapse per neuron (TandemAdd)
    {"type": "avg_pool2d", "input_shape": [H, W, C], "pool_size": [ph, pw],
     "strides": [sh, sw], "padding": "same" | "valid"}
    {"type": "global_avg_pool2d", "input_shape": [H, W, C], "keepdims": false}
    {"type": "concat", "input_shape": [...], "axis": a, "offset": o, "size": n}

The convolutions, dense and identity carry synapses (*weighted*: their MACs are counted,
Eq. 14: one multiply-accumulate per nominal connection, ``fanin * N_out``, padding taps
included; a separable convolution is one linear map, its depthwise and pointwise MACs
summed); pooling and concatenation are linear maps without weights. Output lengths and
paddings follow TensorFlow's (Keras's) convention; the layers themselves take their shapes
from Keras. Every map is a product of
per-axis connection matrices (:func:`axis_map`), from which :mod:`tandem_keras.synops.composite`
counts the exact fan-out of a chain of specs.

Example:
    >>> conv = {"type": "conv2d", "input_shape": [4, 4, 1], "filters": 2,
    ...         "kernel_size": [3, 3], "strides": [1, 1], "padding": "same"}
    >>> output_shape(conv), fanin(conv), macs(conv)    # 9 * 1 * (4 * 4 * 2) MACs
    ((4, 4, 2), 9, 288)
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

Spec = Mapping[str, Any]

#: Specs with synapses (a chain ends at one); MACs are counted for these.
WEIGHTED = ("conv1d", "conv2d", "conv3d", "depthwise_conv2d", "separable_conv2d", "dense", "identity")
#: Specs of maps over spatial axes (a window per axis).
WINDOWED = ("conv1d", "conv2d", "conv3d", "depthwise_conv2d", "separable_conv2d", "avg_pool2d")
#: Linear specs without weights, folded into the next weighted spec.
LINEAR = ("avg_pool2d", "global_avg_pool2d", "concat")


def _tuple(value: int | Sequence[int], rank: int, name: str) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)):
        return (int(value),) * rank
    value = tuple(int(v) for v in value)
    if len(value) != rank:
        raise ValueError(f"{name} must be an int or {rank} of them, got {value!r}")
    return value


def _check_padding(padding: str) -> str:
    padding = str(padding).lower()
    if padding not in ("same", "valid", "causal"):
        raise ValueError(f"padding must be 'same', 'valid' or 'causal', got {padding!r}")
    return padding


def conv_output_length(n_in: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    """Output length of one spatial axis of a convolution or pooling (TensorFlow convention).

    ``same`` and ``causal``: ``ceil(n / s)``; ``valid``: ``ceil((n - k_eff + 1) / s)``,
    ``k_eff = (k-1) d + 1``.

    Example:
        >>> conv_output_length(32, 3, 2, "same"), conv_output_length(224, 11, 4, "valid")
        (16, 54)
    """
    padding = _check_padding(padding)
    if n_in < 1 or kernel < 1 or stride < 1 or dilation < 1:
        raise ValueError(f"bad convolution axis: n_in={n_in}, kernel={kernel}, stride={stride}, "
                         f"dilation={dilation}")
    if padding != "valid":
        return -(-n_in // stride)
    span = (kernel - 1) * dilation + 1
    if span > n_in:
        raise ValueError(f"kernel {kernel} larger than the input {n_in} with 'valid' padding")
    return -(-(n_in - span + 1) // stride)


def pads(n_in: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> tuple[int, int]:
    """Zeros before and after one axis of the input (TensorFlow's padding).

    ``same``: ``total = max((n_out - 1) s + k_eff - n, 0)``, ``total // 2`` before (the odd
    one after); ``causal``: ``k_eff - 1`` before; ``valid``: none.

    Example:
        >>> pads(4, 3, 2, "same"), pads(5, 3, 1, "causal", 2)
        ((0, 1), (4, 0))
    """
    padding = _check_padding(padding)
    span = (kernel - 1) * dilation + 1
    if padding == "causal":
        return span - 1, 0
    if padding == "valid":
        return 0, 0
    n_out = conv_output_length(n_in, kernel, stride, padding, dilation)
    total = max((n_out - 1) * stride + span - n_in, 0)
    return total // 2, total - total // 2


def axis_map(n_in: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> np.ndarray:
    """Connections of one axis of a convolution or pooling: ``M[i, o]`` true iff output ``o`` reads input ``i``.

    Output ``o`` reads inputs ``o s - pad_before + t d``, ``t = 0 .. k-1`` (:func:`pads`).

    Example:
        >>> axis_map(4, 3, 2, "same").astype(int)       # n_out 2, the one pad goes after
        array([[1, 0],
               [1, 0],
               [1, 1],
               [0, 1]])
    """
    n_out = conv_output_length(n_in, kernel, stride, padding, dilation)
    pad_before = pads(n_in, kernel, stride, padding, dilation)[0]
    inputs = (np.arange(n_out)[None, :] * stride - pad_before
              + np.arange(kernel)[:, None] * dilation)           # [k, n_out]
    m = np.zeros((n_in, n_out), dtype=bool)
    valid = (inputs >= 0) & (inputs < n_in)
    m[inputs[valid], np.broadcast_to(np.arange(n_out), inputs.shape)[valid]] = True
    return m


def axis_coverage(n_in: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> np.ndarray:
    """Number of output positions whose receptive field contains each input position.

    Example:
        >>> axis_coverage(5, 3, 2, "same")
        array([1, 2, 1, 2, 1])
    """
    return axis_map(n_in, kernel, stride, padding, dilation).sum(axis=1).astype(np.int64)


def spatial_rank(spec: Spec) -> int:
    """The number of spatial axes of a windowed spec (``convNd``: N, the others: 2)."""
    kind = spec["type"]
    return int(kind[4]) if kind in ("conv1d", "conv2d", "conv3d") else 2


def _spatial(spec: Spec) -> tuple[int, ...]:
    shape = tuple(int(v) for v in spec["input_shape"])
    rank = spatial_rank(spec) if spec["type"] != "global_avg_pool2d" else 2
    if len(shape) != rank + 1:
        layout = {1: "[L, C]", 2: "[H, W, C]"}.get(rank, "[D, H, W, C]")
        raise ValueError(f"{spec.get('type')} input_shape must be {layout}, got {list(shape)}")
    return shape


def _window(spec: Spec) -> tuple[tuple[int, ...], tuple[int, ...], str, tuple[int, ...]]:
    """(kernel, strides, padding, dilation) of a conv or pooling spec, per spatial axis."""
    rank = spatial_rank(spec)
    if spec["type"] == "avg_pool2d":
        kernel = _tuple(spec["pool_size"], rank, "pool_size")
        strides = _tuple(spec.get("strides") or kernel, rank, "strides")
        return kernel, strides, _check_padding(spec.get("padding", "valid")), (1,) * rank
    padding = _check_padding(spec.get("padding", "same"))
    if padding == "causal" and rank != 1:
        raise ValueError(f"padding 'causal' is for 1D convolutions, not {spec['type']}")
    return (_tuple(spec["kernel_size"], rank, "kernel_size"), _tuple(spec.get("strides", 1), rank, "strides"),
            padding, _tuple(spec.get("dilation_rate", 1), rank, "dilation_rate"))


def axis_maps(spec: Spec) -> list[np.ndarray]:
    """The connection matrix of every spatial axis of a convolution or pooling spec."""
    shape = _spatial(spec)
    kernel, strides, padding, dilation = _window(spec)
    return [axis_map(n, k, s, padding, d) for n, k, s, d in zip(shape[:-1], kernel, strides, dilation)]


def spec_type(spec: Spec) -> str:
    """The spec's ``"type"``, checked against the known operations."""
    kind = spec.get("type")
    if kind not in WEIGHTED + LINEAR:
        raise ValueError(f"unknown layer spec type {kind!r} (expected one of "
                         f"{', '.join(WEIGHTED + LINEAR)})")
    return kind


def output_shape(spec: Spec) -> tuple[int, ...]:
    """Output shape (no batch, no time axis) of the operation described by ``spec``.

    Example:
        >>> output_shape({"type": "conv2d", "input_shape": [32, 32, 3], "filters": 8,
        ...               "kernel_size": 3, "strides": 2, "padding": "same"})
        (16, 16, 8)
    """
    kind = spec_type(spec)
    shape = tuple(int(v) for v in spec["input_shape"])
    if kind in WINDOWED:
        spatial = _spatial(spec)
        kernel, strides, padding, dilation = _window(spec)
        c = spatial[-1]
        channels = {"avg_pool2d": c, "depthwise_conv2d": c * int(spec.get("depth_multiplier", 1))}.get(
            kind, int(spec.get("filters", 0)))
        return tuple(conv_output_length(n, k, s, padding, d) for n, k, s, d in
                     zip(spatial[:-1], kernel, strides, dilation)) + (channels,)
    if kind == "dense":
        return shape[:-1] + (int(spec["units"]),)
    if kind == "global_avg_pool2d":
        return (1, 1, _spatial(spec)[-1]) if spec.get("keepdims") else (_spatial(spec)[-1],)
    if kind == "concat":
        axis = int(spec["axis"])
        return shape[:axis] + (int(spec["size"]),) + shape[axis + 1:]
    return shape  # identity


def fanin(spec: Spec) -> int:
    """Nominal fan-in of one output neuron of a weighted spec (0 for linear specs).

    ``k_h k_w C_in`` (conv2d; ``k C_in`` conv1d), ``k_h k_w`` (depthwise), ``F_in`` (dense),
    1 (identity); a separable convolution: its pointwise fan-in ``C_in M`` (its MACs add the
    depthwise ``k_h k_w`` of each of its ``C_in M`` intermediate channels).

    Example:
        >>> fanin({"type": "dense", "input_shape": [1024], "units": 10})
        1024
    """
    kind = spec_type(spec)
    if kind in ("conv1d", "conv2d", "conv3d"):
        kernel = _window(spec)[0]
        return int(np.prod(kernel)) * int(spec["input_shape"][-1])
    if kind == "depthwise_conv2d":
        return int(np.prod(_window(spec)[0]))
    if kind == "separable_conv2d":
        return int(spec["input_shape"][-1]) * int(spec.get("depth_multiplier", 1))
    if kind == "dense":
        return int(spec["input_shape"][-1])
    return 1 if kind == "identity" else 0


def macs(spec: Spec) -> int:
    """ANN multiply-accumulates of one operation for one example (Eq. 14): ``fanin * N_out``.

    Pooling and concatenation: 0 (no weights). Identity synapses (a spike train into
    ``TandemAdd``): one per neuron. A separable convolution: the depthwise ``k_h k_w`` per
    intermediate neuron plus the pointwise ``C_in M`` per output neuron.

    Example:
        >>> macs({"type": "conv2d", "input_shape": [32, 32, 3], "filters": 128,
        ...       "kernel_size": 3, "strides": 1, "padding": "same"})  # 27 * 32*32*128
        3538944
    """
    out = output_shape(spec)
    total = fanin(spec) * int(np.prod(out))
    if spec["type"] == "separable_conv2d":
        intermediate = int(np.prod(out[:-1])) * fanin(spec)
        total += int(np.prod(_window(spec)[0])) * intermediate
    return total
