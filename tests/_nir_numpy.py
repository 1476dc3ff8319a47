"""A small NumPy interpreter of NIR graphs, independent of tandem_keras (imports only numpy).

Discrete time, one step per input frame, every node evaluated each step in topological order
of the edges (no delays), the way the NIR simulators run feed-forward graphs; a node's input
is the sum of the outputs of the nodes with an edge into it:

- ``Input``/``Output``: identity.  ``Affine``: ``x W^T + b``.  ``Scale``: ``x * scale``.
  ``Flatten``: over the non-batch axes ``start_dim..end_dim``.
- ``Conv2d`` / ``Conv1d``: cross-correlation, symmetric integer zero padding, stride,
  dilation (OIHW / OIL), ``groups`` (input and output channels split into that many groups,
  each group's outputs reading only its inputs).
- ``SumPool2d``: the sum over each window of the zero-padded input; ``AvgPool2d``: that sum
  divided by the window's size ``k_h k_w`` (padding counted, as torch's default).
- ``IF``: ``v <- v + r x``; ``LIF``: ``v <- v + (v_leak - v + r x) / tau`` (NIR's
  ``tau dv/dt = v_leak - v + r I`` under forward Euler, one step per frame). Spike
  ``s = v >= v_threshold`` if the graph's metadata says ``threshold_rule = "v >= v_threshold"``,
  else ``v > v_threshold`` (NIR's text); reset by subtraction ``v <- v - v_threshold s`` if the
  node's metadata says ``reset = "subtract"``, else to ``v_reset`` (NIR's text). ``v`` starts
  at the node's ``metadata["v_initial"]`` if given, else 0.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _order(graph) -> list[str]:
    preds = {name: [a for a, b in graph.edges if b == name] for name in graph.nodes}
    done: list[str] = []
    while len(done) < len(graph.nodes):
        ready = [n for n in graph.nodes if n not in done and all(p in done for p in preds[n])]
        if not ready:
            raise ValueError("graph has a cycle")
        done += ready
    return done


def _pairs(node, *keys):
    return [tuple(int(v) for v in np.broadcast_to(np.asarray(getattr(node, k)), 2)) for k in keys]


def conv2d(x: np.ndarray, node) -> np.ndarray:
    """NCHW float32 convolution of a ``nir.Conv2d`` node."""
    (ph, pw), (sh, sw), (dh, dw) = _pairs(node, "padding", "stride", "dilation")
    weight = np.asarray(node.weight, np.float32)
    _, _, kh, kw = weight.shape
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]  # [B, I, OH, OW, KH, KW]
    out = _grouped(windows, weight, int(getattr(node, "groups", 1)), "bihwkl,oikl->bohw")
    return (out + np.asarray(node.bias, np.float32)[None, :, None, None]).astype(np.float32)


def conv1d(x: np.ndarray, node) -> np.ndarray:
    """NCL float32 convolution of a ``nir.Conv1d`` node."""
    p, s, d = (int(np.asarray(getattr(node, k)).reshape(-1)[0]) for k in ("padding", "stride", "dilation"))
    weight = np.asarray(node.weight, np.float32)
    k = weight.shape[-1]
    x = np.pad(x, ((0, 0), (0, 0), (p, p)))
    windows = sliding_window_view(x, (k - 1) * d + 1, axis=2)[:, :, ::s, ::d]   # [B, I, OL, K]
    out = _grouped(windows, weight, int(getattr(node, "groups", 1)), "bilk,oik->bol")
    return (out + np.asarray(node.bias, np.float32)[None, :, None]).astype(np.float32)


def _grouped(windows: np.ndarray, weight: np.ndarray, groups: int, equation: str) -> np.ndarray:
    """The convolution of every group: output channels of group ``g`` read its inputs."""
    per_in, per_out = windows.shape[1] // groups, weight.shape[0] // groups
    assert weight.shape[1] == per_in, (weight.shape, windows.shape, groups)
    return np.concatenate([np.einsum(equation, windows[:, g * per_in:(g + 1) * per_in],
                                     weight[g * per_out:(g + 1) * per_out], optimize=True)
                           for g in range(groups)], axis=1)


def sum_pool2d(x: np.ndarray, node) -> np.ndarray:
    """NCHW window sums of a ``nir.SumPool2d`` / ``nir.AvgPool2d`` node (zero padding)."""
    (kh, kw), (sh, sw), (ph, pw) = _pairs(node, "kernel_size", "stride", "padding")
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return windows.sum(axis=(4, 5), dtype=np.float32)


def _neuron(node, kind, x, v, rule):
    theta = np.asarray(node.v_threshold, np.float32)
    if kind == "IF":
        v = v + np.asarray(node.r, np.float32) * x
    else:  # LIF, forward Euler with dt = 1
        tau = np.asarray(node.tau, np.float32)
        v = v + (np.asarray(node.v_leak, np.float32) - v + np.asarray(node.r, np.float32) * x) / tau
    s = (v >= theta) if rule == "v >= v_threshold" else (v > theta)
    if _text(node.metadata.get("reset", "")) == "subtract":
        after = np.where(s, v - theta, v)
    else:
        after = np.where(s, np.asarray(node.v_reset, np.float32), v)
    return s, v, after.astype(np.float32)


def run(graph, inputs: np.ndarray, near: float = 1e-5):
    """Runs ``graph`` on ``inputs`` ``[T, batch, ...]``.

    Returns ``(values, near_threshold)``: every node's output ``[T, batch, ...]``, and per
    neuron node the number of neuron-steps whose potential was within ``near`` of threshold.
    """
    rule = _text(graph.metadata.get("threshold_rule", "v > v_threshold"))
    order = _order(graph)
    preds = {name: [a for a, b in graph.edges if b == name] for name in graph.nodes}
    potentials: dict[str, np.ndarray] = {}
    neurons = {n for n, node in graph.nodes.items() if type(node).__name__ in ("IF", "LIF")}
    near_threshold = {n: 0 for n in neurons}
    values: dict[str, list] = {name: [] for name in order}
    for frame in np.asarray(inputs, np.float32):
        step: dict[str, np.ndarray] = {}
        for name in order:
            node, kind = graph.nodes[name], type(graph.nodes[name]).__name__
            x = frame if kind == "Input" else sum(step[p] for p in preds[name])
            if kind in ("Input", "Output"):
                y = x
            elif kind == "Affine":
                y = (x @ np.asarray(node.weight, np.float32).T + np.asarray(node.bias, np.float32)).astype(np.float32)
            elif kind == "Scale":
                y = (x * np.asarray(node.scale, np.float32)).astype(np.float32)
            elif kind == "Flatten":
                shape = x.shape[1:]
                start, end = node.start_dim % len(shape), node.end_dim % len(shape)
                y = x.reshape((x.shape[0],) + shape[:start] + (-1,) + shape[end + 1:])
            elif kind == "Conv2d":
                y = conv2d(x, node)
            elif kind == "Conv1d":
                y = conv1d(x, node)
            elif kind == "SumPool2d":
                y = sum_pool2d(x, node)
            elif kind == "AvgPool2d":
                y = sum_pool2d(x, node) / np.float32(np.prod(_pairs(node, "kernel_size")[0]))
            elif kind in ("IF", "LIF"):
                v0 = np.float32(float(node.metadata.get("v_initial", 0.0)))
                s, v, potentials[name] = _neuron(node, kind, x, potentials.get(name, np.full_like(x, v0)), rule)
                near_threshold[name] += int(np.sum(np.abs(v - np.asarray(node.v_threshold)) < near))
                y = s.astype(np.float32)
            else:
                raise NotImplementedError(f"node {name}: {kind}")
            step[name] = y
            values[name].append(y)
    return {name: np.stack(v) for name, v in values.items()}, near_threshold
