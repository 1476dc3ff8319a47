"""Exact fan-out of a spike's path, SynOps from spike counts (method §6, Eq. 13).

The SNN cost counts one accumulate (AC) per spike and synapse it reaches (paper Eq. 13,
with ``c_j = sum_t s_j(t)`` the spike count of neuron ``j``)::

    SynOps_SNN = sum_t sum_j fanout_j s_j(t) = sum_j fanout_j c_j

A spike's path is a *chain* of operation specs (:mod:`tandem_keras.synops.ops`) ending at a
weighted one; pooling and concatenation on the way are folded into it. Its fan-out is the
number of distinct outputs of the composite linear map that the spiking neuron reaches (a
nonzero connection), exact per neuron (border neurons reach fewer). Reshapes between specs
are implicit (each spec holds its input shape).

The composite is computed per axis: every map is a product of per-axis connection
matrices, so a chain's reach is a product of boolean matrices and the fan-out of neuron
``(y, x, c)`` is ``mult * |R_y[y]| * |R_x[x]| * |R_c[c]|``. Several chains into the same
weighted operation (two paths of one spike to the same synapses) are united exactly by
inclusion-exclusion.

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
    >>> pool = {"type": "avg_pool2d", "input_shape": [8, 8, 1], "pool_size": [2, 2],
    ...         "strides": [2, 2], "padding": "valid"}
    >>> chain_fanout([8, 8, 1], [[pool, conv]])[:2, :2, 0]   # each pooled cell's fan-out
    array([[8, 8],
           [8, 8]])
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np

from tandem_keras.synops.ops import WEIGHTED, WINDOWED, Spec, axis_maps, output_shape, spatial_rank, spec_type


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

    def spatial(self, where: str, rank: int = 2) -> None:
        if self.scrambled or self.shape != self.inner or len(self.inner) != rank + 1:
            raise NotImplementedError(f"{where}: the spikes reach it reshaped from "
                                      f"{list(self.inner)} to {list(self.shape)}; only "
                                      f"{'[L, C]' if rank == 1 else '[H, W, C]'} maps that keep "
                                      "the layout are counted")

    def compose(self, i: int, m: np.ndarray) -> None:
        a = self.axes[i]
        self.axes[i] = m.copy() if a is None else (a.astype(np.uint8) @ m.astype(np.uint8)) > 0

    def collapse(self, i: int) -> None:
        a = self.axes[i]
        self.axes[i] = (np.ones((self.source[i], 1), bool) if a is None
                        else a.any(axis=1, keepdims=True))

    def apply(self, spec: Spec, where: str) -> None:
        kind = spec_type(spec)
        self.reshape(tuple(int(v) for v in spec["input_shape"]), where)
        if kind in WINDOWED:
            rank = spatial_rank(spec)
            self.spatial(where, rank)
            for axis, m in enumerate(axis_maps(spec)):
                self.compose(axis, m)
            if kind in ("conv1d", "conv2d", "conv3d", "separable_conv2d"):   # every channel: all filters
                self.collapse(rank)
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
        if not chain or spec_type(chain[-1]) not in WEIGHTED:
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
    if spec_type(spec) not in WEIGHTED:
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
