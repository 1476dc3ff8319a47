"""NIR nodes of tandem_keras's layers (used by :mod:`tandem_keras.nir`; NIR is channels-first).

Each function returns NIR nodes for one Keras layer, with the exact arithmetic of the layer
in inference (BN folded with the moving statistics, per-step bias ``b'/T``).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

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
