"""Operation specs: what one operation of a spike's path connects, its output shape and MACs.

An operation is a small JSON-able *spec* (``input_shape`` without batch and time axes)::

    {"type": "conv2d", "input_shape": [H, W, C], "filters": F, "kernel_size": [kh, kw],
     "strides": [sh, sw], "padding": "same" | "valid", "dilation_rate": [dh, dw]}
    {"type": "depthwise_conv2d", ..., "depth_multiplier": M}   (no "filters")
    {"type": "dense", "input_shape": [..., F_in], "units": U}
    {"type": "identity", "input_shape": [...]}         one synapse per neuron (TandemAdd)
    {"type": "avg_pool2d", "input_shape": [H, W, C], "pool_size": [ph, pw],
     "strides": [sh, sw], "padding": "same" | "valid"}
    {"type": "global_avg_pool2d", "input_shape": [H, W, C], "keepdims": false}
    {"type": "concat", "input_shape": [...], "axis": a, "offset": o, "size": n}

The first four carry synapses (*weighted*: their MACs are counted, Eq. 14: one
multiply-accumulate per nominal connection, ``fanin * N_out``, padding taps included);
pooling and concatenation are linear maps without weights. Every map is a product of
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
WEIGHTED = ("conv2d", "depthwise_conv2d", "dense", "identity")
#: Linear specs without weights, folded into the next weighted spec.
LINEAR = ("avg_pool2d", "global_avg_pool2d", "concat")


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


def conv_output_length(n_in: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    """Output length of one spatial axis of a convolution or pooling (TensorFlow convention).

    ``same``: ``ceil(n / s)``; ``valid``: ``ceil((n - k_eff + 1) / s)``, ``k_eff = (k-1) d + 1``.

    Example:
        >>> conv_output_length(32, 3, 2, "same"), conv_output_length(224, 11, 4, "valid")
        (16, 54)
    """
    padding = _check_padding(padding)
    if n_in < 1 or kernel < 1 or stride < 1 or dilation < 1:
        raise ValueError(f"bad convolution axis: n_in={n_in}, kernel={kernel}, stride={stride}, "
                         f"dilation={dilation}")
    if padding == "same":
        return -(-n_in // stride)
    span = (kernel - 1) * dilation + 1
    if span > n_in:
        raise ValueError(f"kernel {kernel} larger than the input {n_in} with 'valid' padding")
    return -(-(n_in - span + 1) // stride)


def axis_map(n_in: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> np.ndarray:
    """Connections of one axis of a convolution or pooling: ``M[i, o]`` true iff output ``o`` reads input ``i``.

    TensorFlow's padding: ``pad_before = max((n_out - 1) s + k_eff - n, 0) // 2`` ("same",
    0 for "valid"); output ``o`` reads inputs ``o s - pad_before + t d``, ``t = 0 .. k-1``.

    Example:
        >>> axis_map(4, 3, 2, "same").astype(int)       # n_out 2, the one pad goes after
        array([[1, 0],
               [1, 0],
               [1, 1],
               [0, 1]])
    """
    n_out = conv_output_length(n_in, kernel, stride, padding, dilation)
    span = (kernel - 1) * dilation + 1
    pad_before = max((n_out - 1) * stride + span - n_in, 0) // 2 if padding == "same" else 0
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


def _spatial(spec: Spec) -> tuple[int, int, int]:
    shape = [int(v) for v in spec["input_shape"]]
    if len(shape) != 3:
        raise ValueError(f"{spec.get('type')} input_shape must be [H, W, C], got {shape}")
    return shape[0], shape[1], shape[2]


def _window(spec: Spec) -> tuple[tuple[int, int], tuple[int, int], str, tuple[int, int]]:
    """(kernel, strides, padding, dilation) of a conv or pooling spec."""
    if spec["type"] == "avg_pool2d":
        kernel = _pair(spec["pool_size"], "pool_size")
        strides = _pair(spec.get("strides") or kernel, "strides")
        return kernel, strides, _check_padding(spec.get("padding", "valid")), (1, 1)
    return (_pair(spec["kernel_size"], "kernel_size"), _pair(spec.get("strides", 1), "strides"),
            _check_padding(spec.get("padding", "same")),
            _pair(spec.get("dilation_rate", 1), "dilation_rate"))


def axis_maps(spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """The height and width connection matrices of a convolution or pooling spec."""
    h, w, _ = _spatial(spec)
    (kh, kw), (sh, sw), padding, (dh, dw) = _window(spec)
    return axis_map(h, kh, sh, padding, dh), axis_map(w, kw, sw, padding, dw)


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
    if kind in ("conv2d", "depthwise_conv2d", "avg_pool2d"):
        h, w, c = _spatial(spec)
        (kh, kw), (sh, sw), padding, (dh, dw) = _window(spec)
        channels = {"conv2d": lambda: int(spec["filters"]), "avg_pool2d": lambda: c,
                    "depthwise_conv2d": lambda: c * int(spec.get("depth_multiplier", 1))}[kind]()
        return (conv_output_length(h, kh, sh, padding, dh),
                conv_output_length(w, kw, sw, padding, dw), channels)
    if kind == "dense":
        return shape[:-1] + (int(spec["units"]),)
    if kind == "global_avg_pool2d":
        return (1, 1, _spatial(spec)[2]) if spec.get("keepdims") else (_spatial(spec)[2],)
    if kind == "concat":
        axis = int(spec["axis"])
        return shape[:axis] + (int(spec["size"]),) + shape[axis + 1:]
    return shape  # identity


def fanin(spec: Spec) -> int:
    """Nominal fan-in of one output neuron of a weighted spec (0 for linear specs).

    ``k_h k_w C_in`` (conv2d), ``k_h k_w`` (depthwise), ``F_in`` (dense), 1 (identity).

    Example:
        >>> fanin({"type": "dense", "input_shape": [1024], "units": 10})
        1024
    """
    kind = spec_type(spec)
    if kind == "conv2d":
        kh, kw = _pair(spec["kernel_size"], "kernel_size")
        return kh * kw * int(spec["input_shape"][-1])
    if kind == "depthwise_conv2d":
        kh, kw = _pair(spec["kernel_size"], "kernel_size")
        return kh * kw
    if kind == "dense":
        return int(spec["input_shape"][-1])
    return 1 if kind == "identity" else 0


def macs(spec: Spec) -> int:
    """ANN multiply-accumulates of one operation for one example (Eq. 14): ``fanin * N_out``.

    Pooling and concatenation: 0 (no weights). Identity synapses (a spike train into
    ``TandemAdd``): one per neuron.

    Example:
        >>> macs({"type": "conv2d", "input_shape": [32, 32, 3], "filters": 128,
        ...       "kernel_size": 3, "strides": 1, "padding": "same"})  # 27 * 32*32*128
        3538944
    """
    return fanin(spec) * int(np.prod(output_shape(spec)))
