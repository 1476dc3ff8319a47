"""Synaptic operations (SynOps), ANN multiply-accumulates and energy (method §6, Eq. 13-14).

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

Energy uses 0.9 pJ per AC and 4.6 pJ per MAC (45 nm CMOS, Horowitz 2014) by default;
other devices are registered by name (:func:`tandem_keras.register_device`).

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

#: Energy of one accumulate, joules (45 nm, Horowitz 2014; the default device's).
ENERGY_PER_AC: float = 0.9e-12
#: Energy of one multiply-accumulate, joules (45 nm, Horowitz 2014; the default device's).
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


def energy_joules(accumulates: float = 0.0, multiply_accumulates: float = 0.0,
                  device: Any = None) -> float:
    """Energy estimate ``e_AC * ACs + e_MAC * MACs`` (joules) on a registered device.

    ``device``: a name registered with :func:`tandem_keras.register_device` or a
    :class:`tandem_keras.registry.Device`; default ``"horowitz_45nm"`` (0.9 pJ per AC,
    4.6 pJ per MAC).

    Example:
        >>> round(energy_joules(1e6, 1e6) * 1e6, 6)   # microjoules
        5.5
    """
    from tandem_keras.registry import get_device

    d = get_device(device)
    return d.energy_per_ac * float(accumulates) + d.energy_per_mac * float(multiply_accumulates)
