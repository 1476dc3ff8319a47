"""Operation specs: exact fan-out, ANN MACs and the composite linear map of a spike's path.

The SNN cost counts one accumulate (AC) per spike and synapse it reaches (paper Eq. 13,
with ``c_j = sum_t s_j(t)`` the spike count of neuron ``j``)::

    SynOps_SNN = sum_t sum_j fanout_j s_j(t) = sum_j fanout_j c_j

The ANN cost counts one multiply-accumulate (MAC) per nominal connection of every weighted
operation (Eq. 14): ``fanin * N_out`` (padding taps included, as the usual MAC counts).

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

The first four carry synapses (*weighted*: their MACs are counted); pooling and
concatenation are linear maps without weights, folded into the next weighted operation.
A spike's path is a *chain* of specs ending at a weighted one; its fan-out is the number of
distinct outputs of the composite linear map that the spiking neuron reaches (a nonzero
connection), exact per neuron (border neurons reach fewer). Reshapes between specs are
implicit (each spec holds its input shape).

The composite is computed per axis: every map here is a product of per-axis connection
matrices (rows: a neuron's index along the axis, columns: the output's), so a chain's reach
is a product of boolean matrices and the fan-out of neuron ``(y, x, c)`` is
``mult * |R_y[y]| * |R_x[x]| * |R_c[c]|``. Several chains into the same weighted operation
(two paths of one spike to the same synapses) are united exactly by inclusion-exclusion.

Example:
    >>> conv = {"type": "conv2d", "input_shape": [4, 4, 1], "filters": 2,
    ...         "kernel_size": [3, 3], "strides": [1, 1], "padding": "same"}
    >>> fanout(conv)[:, :, 0]                 # 2 filters x covered 3x3 taps
    array([[ 8, 12, 12,  8],
           [12, 18, 18, 12],
           [12, 18, 18, 12],
           [ 8, 12, 12,  8]])
    >>> synops_from_counts(np.ones((1, 4, 4, 1)), fanout(conv))   # one spike per neuron
    array([200.])
    >>> macs(conv)                            # 9 * 1 * (4 * 4 * 2)
    288
    >>> pool = {"type": "avg_pool2d", "input_shape": [8, 8, 1], "pool_size": [2, 2],
    ...         "strides": [2, 2], "padding": "valid"}
    >>> chain_fanout([8, 8, 1], [[pool, conv]])[:2, :2, 0]   # each pooled cell's fan-out
    array([[8, 8],
           [8, 8]])
"""

from __future__ import annotations

import itertools
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


def conv2d_fanout(input_shape: Sequence[int], filters: int, kernel_size: int | Sequence[int],
                  strides: int | Sequence[int] = 1, padding: str = "same",
                  dilation_rate: int | Sequence[int] = 1) -> np.ndarray:
    """Exact fan-out of every input neuron of a 2D convolution, shape ``[H, W, C]``.

    ``fanout[y, x, c] = filters * coverage_h[y] * coverage_w[x]`` (channels-last).

    Example:
        >>> conv2d_fanout([3, 3, 1], 1, 3, 1, "valid")[:, :, 0]
        array([[1, 1, 1],
               [1, 1, 1],
               [1, 1, 1]])
    """
    return fanout({"type": "conv2d", "input_shape": list(input_shape), "filters": filters,
                   "kernel_size": kernel_size, "strides": strides, "padding": padding,
                   "dilation_rate": dilation_rate})


def dense_fanout(input_shape: Sequence[int], units: int) -> np.ndarray:
    """Fan-out of every input neuron of a dense layer: ``units`` each.

    Example:
        >>> dense_fanout([3], 4)
        array([4, 4, 4])
    """
    return np.full(tuple(int(v) for v in input_shape), int(units), dtype=np.int64)


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


def _axis_maps(spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    h, w, _ = _spatial(spec)
    (kh, kw), (sh, sw), padding, (dh, dw) = _window(spec)
    return axis_map(h, kh, sh, padding, dh), axis_map(w, kw, sw, padding, dw)


def _kind(spec: Spec) -> str:
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
    kind = _kind(spec)
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
    kind = _kind(spec)
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


class _Reach:
    """Per-axis reach of a chain from the source neurons (see the module docstring).

    ``axes[i]``: boolean ``[n_source_i, n_i]``; ``inner`` = ``(n_i)``; ``shape``: the
    tensor's shape at this point (a reshape of ``inner``; ``scrambled`` when not, e.g.
    after concatenating flattened vectors: then only a dense map may follow).
    """

    def __init__(self, source_shape: Sequence[int]) -> None:
        self.axes: list = [None] * len(source_shape)  # None: the identity (not materialized)
        self.shape = tuple(int(n) for n in source_shape)
        self.source = self.shape
        self.inner = self.shape
        self.scrambled = False
        self.mult = 1

    def axis(self, i: int) -> np.ndarray:
        m = self.axes[i]
        return np.eye(self.source[i], dtype=bool) if m is None else m

    def reshape(self, shape: tuple, where: str) -> None:
        if not self.scrambled and int(np.prod(shape)) != int(np.prod(self.shape)):
            raise NotImplementedError(f"{where}: input shape {list(shape)} does not hold the "
                                      f"{int(np.prod(self.shape))} neurons of {list(self.shape)}")
        self.shape = shape

    def spatial(self, where: str) -> None:
        if self.scrambled or self.shape != self.inner or len(self.inner) != 3:
            raise NotImplementedError(f"{where}: the spikes reach it reshaped from "
                                      f"{list(self.inner)} to {list(self.shape)}; only [H, W, C] "
                                      "maps that keep the layout are counted")

    def compose(self, i: int, m: np.ndarray) -> None:
        a = self.axes[i]
        self.axes[i] = m.copy() if a is None else (a.astype(np.uint8) @ m.astype(np.uint8)) > 0

    def collapse(self, i: int) -> None:
        a = self.axes[i]
        self.axes[i] = (np.ones((self.source[i], 1), bool) if a is None
                        else a.any(axis=1, keepdims=True))

    def apply(self, spec: Spec, where: str) -> None:
        kind = _kind(spec)
        self.reshape(tuple(int(v) for v in spec["input_shape"]), where)
        if kind in ("conv2d", "depthwise_conv2d", "avg_pool2d"):
            self.spatial(where)
            mh, mw = _axis_maps(spec)
            self.compose(0, mh)
            self.compose(1, mw)
            if kind == "conv2d":
                self.collapse(2)
                self.mult *= int(spec["filters"])
            elif kind == "depthwise_conv2d":
                self.mult *= int(spec.get("depth_multiplier", 1))
            self.inner = self.sizes()
        elif kind == "global_avg_pool2d":
            self.spatial(where)
            self.collapse(0)
            self.collapse(1)
            self.inner = self.sizes()
        elif kind == "concat":
            axis, offset, size = int(spec["axis"]), int(spec["offset"]), int(spec["size"])
            if not 0 <= offset <= size - int(spec["input_shape"][axis]):
                raise ValueError(f"{where}: concat offset {offset} of {spec['input_shape']} "
                                 f"outside the size {size}")
            if not self.scrambled and self.shape == self.inner:
                embed = np.zeros((self.inner[axis], size), dtype=bool)
                embed[np.arange(self.inner[axis]), offset + np.arange(self.inner[axis])] = True
                self.compose(axis, embed)
                self.inner = self.sizes()
            elif len(self.shape) == 1:
                self.scrambled = True
            else:
                self.spatial(where)
        elif kind == "dense":
            units = int(spec["units"])
            if len(self.shape) == 1 and (self.scrambled or len(self.inner) > 1):
                for i in range(len(self.axes)):      # a flat vector: every input reaches all units
                    self.collapse(i)
            elif (not self.scrambled and self.shape[-1] == self.inner[-1]
                  and int(np.prod(self.shape[:-1])) == int(np.prod(self.inner[:-1]))):
                self.collapse(len(self.axes) - 1)    # the last axis, the others kept
            else:
                raise NotImplementedError(f"{where}: a dense map over a reshaped last axis "
                                          f"({list(self.inner)} -> {list(self.shape)})")
            self.mult *= units
        self.shape = output_shape(spec)

    def sizes(self) -> tuple:
        return tuple(n if m is None else m.shape[1] for n, m in zip(self.source, self.axes))

    def fanout(self, axes: Sequence[np.ndarray] | None = None) -> np.ndarray:
        counts = [np.ones(n, np.int64) if a is None else a.sum(axis=1).astype(np.int64)
                  for n, a in zip(self.source, axes or self.axes)]
        out = np.array(self.mult, dtype=np.int64)
        for c in counts:
            out = np.multiply.outer(out, c)
        return out


def _terminal(chain: Sequence[Spec], index: int) -> Any:
    last = chain[-1]
    return last.get("layer", ("chain", index)), last.get("type")


def chain_fanout(source_shape: Sequence[int], chains: Sequence[Sequence[Spec]],
                 source: str = "the spiking layer") -> np.ndarray:
    """Exact fan-out of every neuron of ``source_shape`` along ``chains`` (int64, that shape).

    Each chain is a list of specs ending at a weighted one. Chains that end at the same
    operation (the same ``"layer"``) reach one set of synapses: their reaches are united
    (inclusion-exclusion over per-axis intersections); different operations add up.

    Raises:
      NotImplementedError: a chain that reshapes the neurons' layout before a spatial map,
        or that does not end at a weighted spec (naming ``source`` and the layer).
    """
    shape = tuple(int(v) for v in source_shape)
    groups: dict = {}
    for index, chain in enumerate(chains):
        if not chain or _kind(chain[-1]) not in WEIGHTED:
            raise NotImplementedError(f"fan-out of {source!r}: a chain must end at a weighted "
                                      f"operation, got {[s.get('type') for s in chain]}")
        reach = _Reach(shape)
        for spec in chain:
            reach.apply(spec, f"fan-out of {source!r} into layer {spec.get('layer', spec['type'])!r}")
        groups.setdefault(_terminal(chain, index), []).append(reach)
    total = np.zeros(shape, dtype=np.int64)
    for key, reaches in groups.items():
        if len(reaches) == 1:
            total += reaches[0].fanout()
            continue
        if len(reaches) > 10 or len({r.sizes() for r in reaches}) != 1:
            raise NotImplementedError(f"fan-out of {source!r}: {len(reaches)} paths into layer "
                                      f"{key[0]!r} that cannot be united")
        for size in range(1, len(reaches) + 1):  # |A u B u ...| by inclusion-exclusion
            sign = 1 if size % 2 else -1
            for subset in itertools.combinations(reaches, size):
                axes = [np.logical_and.reduce([r.axis(i) for r in subset])
                        for i in range(len(shape))]
                total += sign * subset[0].fanout(axes)
    return total


def fanout(spec: Spec) -> np.ndarray:
    """Per-neuron fan-out into one weighted operation (shape ``spec["input_shape"]``).

    Example:
        >>> fanout({"type": "dense", "input_shape": [2], "units": 5})
        array([5, 5])
    """
    if _kind(spec) not in WEIGHTED:
        raise ValueError(f"fanout: {spec['type']!r} has no synapses; use chain_fanout with the "
                         "weighted operation that follows it")
    return chain_fanout(spec["input_shape"], [[spec]])


def connections(spec: Spec) -> int:
    """Exact number of connections of a weighted operation (padding excluded): ``sum_j fanout_j``.

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
            f"spike counts of shape {counts.shape} do not match the fan-out shape {fanouts.shape}")
    return counts.reshape(counts.shape[0], -1) @ fanouts.reshape(-1)
