"""Where an SNN departs from its ANN: a per-layer diagnosis a user can act on.

:func:`diagnose` runs a tandem model three ways on the same examples and compares, for every
spiking layer ``l`` (the encoder, tandem layers with neurons, ``TandemAdd``, max pooling):

* ``c``: the SNN's spike counts (``mode="tandem"``: the exact integrate-and-fire network);
* ``q``, ``a``: what the layer's coupled ANN makes of the *SNN's own* input, ``V_f`` from the
  input counts (method §3, inference statistics): the rounded count
  ``q = clip(floor(V_f / theta + v0), 0, T)`` an ideal neuron would emit (an evenly spread
  input), and the coupled activation ``a = clip(V_f / theta + v0, 0, T)`` the tandem backward
  pass differentiates;
* ``Q``: the bounded quantized ANN of the same weights (``mode="quantized"``), each layer fed
  by the quantized ANN's own previous layer: what the SNN would emit if spiking added nothing.

Per layer: the error the layer **adds**, ``mean |c - q|`` (its neurons' spike timing: an
input that arrives unevenly, a neuron that fires early and is inhibited later, residual
potential left at the end of the window), and the error it **inherits**,
``mean |q - Q|`` (its input already differs from the quantized ANN's); the total
``mean |c - Q|``; ``c`` against ``a`` as the paper's Fig. 9 reads it (angle and correlation
per example, ``mean |c - a|``); the firing rate ``mean(c) / T``; the fractions of silent
(``c = 0``) and saturated (``c = T``) neurons, and of neurons that fire fewer (``c < q``) or
more (``c > q``) spikes than the ideal count. For a ``TandemAdd`` (a residual neuron) each
input's share of the potential, ``mean |w_i X_i| / sum_j mean |w_j X_j|`` (``X_i`` the
input's time-sum: spike counts of the shortcut, ``V_f`` of the branch's current), and its
relative deviation from the quantized ANN's, ``mean |X_i - X_i^Q| / mean |X_i^Q|``.

With labels, the top-1 error of the hybrids whose first ``k`` spiking layers (with the
layers without neurons after them, :func:`tandem_keras.conversion.progressive.stages`) run
as the SNN and the rest as the quantized ANN, ``k = 0 .. L``: ``k = 0`` is the quantized ANN,
``k = L`` the SNN, and the step from ``k - 1`` to ``k`` is the accuracy that spiking in layer
``k`` costs given the spiking layers before it.

Example:
    >>> import keras, numpy as np, tandem_keras as tk
    >>> m = keras.Sequential([keras.Input((6,)), tk.SpikeEncoder(4, name="enc"),
    ...     tk.TandemDense(5, batch_norm=False, name="h"), tk.SpikeCount(),
    ...     keras.layers.Dense(3, name="out")])
    >>> x = np.random.default_rng(0).uniform(0, 4, (16, 6)).astype("float32")
    >>> d = tk.diagnosis.diagnose(m, x, np.zeros(16, "int64"))
    >>> [row["name"] for row in d.layers], d.layers[0]["added"]
    (['enc', 'h'], 0.0)
    >>> [k for k, _, _ in d.prefix_errors]
    [0, 1, 2]
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tandem_keras import analysis, synops
from tandem_keras._checks import mark_current
from tandem_keras._keras_internals import producer as producer_of
from tandem_keras.layers import MaxPooling2D, SpikeEncoder, TandemAdd, TandemLayer

#: Columns of :meth:`Diagnosis.table`, in order, with their headers.
COLUMNS = (("name", "layer"), ("kind", "kind"), ("rate", "rate"), ("silent", "silent"),
           ("saturated", "sat."), ("added", "added |c-q|"), ("inherited", "inherited |q-Q|"),
           ("total", "total |c-Q|"), ("fewer", "c<q"), ("more", "c>q"), ("angle_deg", "angle(c,a)"),
           ("pcc", "pcc(c,a)"), ("abs_c_minus_a", "|c-a|"))


@dataclasses.dataclass
class Diagnosis:
    """The result of :func:`diagnose`: ``layers`` (one dict per spiking layer, graph order;
    keys as :data:`COLUMNS`, plus ``neurons``, ``inputs`` for a ``TandemAdd``),
    ``prefix_errors`` (``(k, last layer switched, top-1 error)``, empty without labels),
    ``errors`` (top-1 of ``"snn"``, ``"quantized"``, ``"ann"`` with labels) and
    ``examples``."""

    layers: list
    prefix_errors: list
    errors: dict
    examples: int
    time_steps: int

    def table(self) -> str:
        """The per-layer rows as a text table (then the inputs of each ``TandemAdd``, the
        prefix errors and the errors)."""
        headers = [h for _, h in COLUMNS]
        body = [[_fmt(row.get(key)) for key, _ in COLUMNS] for row in self.layers]
        widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
                  for i, h in enumerate(headers)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in body]
        for row in self.layers:
            for i, entry in enumerate(row.get("inputs") or []):
                lines.append(f"{row['name']} input {i} ({entry['source']}): share "
                             f"{entry['share']:.3f}, deviation from the quantized ANN "
                             f"{_fmt(entry['deviation'])}")
        if self.prefix_errors:
            lines.append("top-1 error, first k spiking layers as the SNN, the rest as the "
                         "quantized ANN:")
            previous = None
            for k, name, error in self.prefix_errors:
                step = "" if previous is None else f" ({100 * (error - previous):+.2f})"
                lines.append(f"  k={k:<3d} {name or '(quantized ANN)':<28s} {100 * error:.2f}%{step}")
                previous = error
        if self.errors:
            lines.append("top-1 error: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in self.errors.items()))
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if not np.isfinite(value) else f"{value:.3f}"
    return str(value)


def _copy_in_mode(model: keras.Model, mode: str) -> keras.Model:
    from tandem_keras.modes import with_mode

    return with_mode(model, mode)


def _batches(x: np.ndarray, batch_size: int):
    for start in range(0, len(x), batch_size):
        yield start, x[start:start + batch_size]


def _probe(model: keras.Model, nodes: Sequence[Any], full_inputs: bool) -> keras.Model:
    """``x -> {name/in{i}: input train (or its time-sum), name/out: output counts}``."""
    outputs = {}
    for node in nodes:
        name = node.operation.name
        for i, tensor in enumerate(node.input_tensors):
            timed = isinstance(node.operation, (TandemLayer, TandemAdd, MaxPooling2D))
            outputs[f"{name}/in{i}"] = tensor if (full_inputs or not timed) else keras.ops.sum(tensor, axis=1)
        outputs[f"{name}/out"] = keras.ops.sum(node.outputs[0], axis=1)
    return keras.Model(model.inputs[0], outputs)


def _potential(layer: Any, inputs: list) -> Optional[np.ndarray]:
    """``V_f`` of ``layer``'s coupled ANN from its input trains (inference statistics), or
    None for a spiking layer without one (max pooling)."""
    if isinstance(layer, SpikeEncoder):
        return np.asarray(inputs[0], np.float32)
    sums = [np.sum(np.asarray(t, np.float32), axis=1) for t in inputs]
    if isinstance(layer, TandemAdd):
        scales = layer.current_scales or [1.0] * len(sums)
        return sum(np.float32(w) * s for w, s in zip(scales, sums))
    if isinstance(layer, TandemLayer):
        # The layer's own linear map and folded BN: in "ann" mode without neurons its output is
        # V_f (time axis of length 1), read from the input's time-sum.
        mode, neuron = layer.mode, layer.neuron
        try:
            layer.mode, layer.neuron = "ann", None
            out = layer(tf.constant(sums[0][:, None]), training=False)
        finally:
            layer.mode, layer.neuron = mode, neuron
        return np.asarray(out, np.float32)[:, 0]
    return None


def _ideal(layer: Any, inputs: list, v_f: Optional[np.ndarray]) -> tuple:
    """``(q, a)``: the rounded count and the coupled activation of ``layer`` on its SNN inputs."""
    time_steps = float(layer.time_steps)
    if v_f is None:  # max pooling: the coupled ANN max-pools the input counts (method §3.4)
        counts = np.sum(np.asarray(inputs[0], np.float32), axis=1)
        pooled = np.asarray(keras.ops.max_pool(counts, layer.pool_size, layer.strides, layer.padding,
                                               layer.data_format), np.float32)
        return pooled, pooled
    v0 = float(getattr(getattr(layer, "neuron", None), "rounding", 0.0) or 0.0)
    level = v_f / np.float32(layer.threshold) + np.float32(v0)
    return np.clip(np.floor(level), 0.0, time_steps), np.clip(level, 0.0, time_steps)


def _mean(values: list) -> float:
    return float(np.mean(np.concatenate([np.ravel(v) for v in values]))) if values else float("nan")


def diagnose(model: keras.Model, x: Any, y: Any = None, *, batch_size: int = 64,
             prefix: bool = True) -> Diagnosis:
    """Per spiking layer, where the SNN of ``model`` departs from its ANN (see the module).

    Args:
      model: a functional or Sequential tandem model (any mode: it is copied into the
        ``"tandem"`` and ``"quantized"`` modes, same weights).
      x: input examples (an array).
      y: integer labels of ``x`` (optional): the top-1 errors of the SNN, the quantized ANN,
        the ReLU ANN, and of the hybrids (``prefix=True``).
      batch_size: examples per forward pass.
      prefix: with labels, also the hybrids' errors (one pass over ``x`` per spiking layer).

    Returns:
      A :class:`Diagnosis`; ``print(d.table())`` shows it.

    Raises:
      ValueError: the model has no spiking layer.
    """
    x = np.asarray(x)
    snn = _copy_in_mode(model, "tandem")
    quantized = _copy_in_mode(model, "quantized")
    nodes = synops.graph.spiking_nodes(snn)
    if not nodes:
        raise ValueError(f"model {model.name!r} has no spiking layer to diagnose")
    q_nodes = {n.operation.name: n for n in synops.graph.spiking_nodes(quantized)}
    snn_probe = _probe(snn, nodes, full_inputs=True)
    q_probe = _probe(quantized, [q_nodes[n.operation.name] for n in nodes], full_inputs=False)
    acc: dict = {}
    for _, batch in _batches(x, batch_size):
        s = snn_probe(batch, training=False)
        qo = q_probe(batch, training=False)
        for node in nodes:
            layer, name = node.operation, node.operation.name
            inputs = [s[f"{name}/in{i}"] for i in range(len(node.input_tensors))]
            inputs = [mark_current(t) if len(t.shape) > 1 else t for t in inputs]
            c = np.asarray(s[f"{name}/out"], np.float32)
            big_q = np.asarray(qo[f"{name}/out"], np.float32)
            v_f = _potential(layer, inputs)
            q, a = _ideal(layer, inputs, v_f)
            entry = acc.setdefault(name, {k: [] for k in (
                "c", "q", "Q", "angle", "pcc", "c_minus_a", "sums", "q_sums")})
            entry["c"].append(c)
            entry["q"].append(q)
            entry["Q"].append(big_q)
            entry["angle"].append(analysis.cosine_angle_degrees(c, a))
            entry["pcc"].append(analysis.pearson(c, a))
            entry["c_minus_a"].append(np.abs(c - a))
            if isinstance(layer, TandemAdd):
                entry["sums"].append([np.sum(np.asarray(t, np.float32), axis=1) for t in inputs])
                entry["q_sums"].append([np.asarray(qo[f"{name}/in{i}"], np.float32)
                                        for i in range(len(inputs))])
    time_steps = None
    rows = []
    for node in nodes:
        layer, name = node.operation, node.operation.name
        e = acc[name]
        c, q, big_q = (np.concatenate(e[k]) for k in ("c", "q", "Q"))
        T = float(layer.time_steps)
        time_steps = time_steps or int(T)
        angle, pcc = np.concatenate(e["angle"]), np.concatenate(e["pcc"])
        row = {"name": name, "kind": _kind(layer), "neurons": int(np.prod(c.shape[1:])),
               "rate": float(np.mean(c) / T), "silent": float(np.mean(c == 0)),
               "saturated": float(np.mean(c == T)),
               "added": float(np.mean(np.abs(c - q))), "inherited": float(np.mean(np.abs(q - big_q))),
               "total": float(np.mean(np.abs(c - big_q))),
               "fewer": float(np.mean(c < q)), "more": float(np.mean(c > q)),
               "angle_deg": float(np.nanmean(angle)) if np.isfinite(angle).any() else float("nan"),
               "pcc": float(np.nanmean(pcc)) if np.isfinite(pcc).any() else float("nan"),
               "abs_c_minus_a": _mean(e["c_minus_a"]), "inputs": None}
        if e["sums"]:
            row["inputs"] = _residual_inputs(layer, node, e)
        rows.append(row)
    errors, prefix_errors = {}, []
    if y is not None:
        y = np.asarray(y).reshape(-1)
        errors = {"snn": _top1_error(snn, x, y, batch_size),
                  "quantized": _top1_error(quantized, x, y, batch_size),
                  "ann": _top1_error(_copy_in_mode(model, "ann"), x, y, batch_size)}
        if prefix:
            prefix_errors = _prefix_errors(model, x, y, batch_size)
    return Diagnosis(rows, prefix_errors, errors, int(len(x)), int(time_steps))


def _kind(layer: Any) -> str:
    if isinstance(layer, SpikeEncoder):
        return "encoder"
    if isinstance(layer, TandemAdd):
        return "residual"
    if isinstance(layer, TandemLayer):
        return "tandem"
    return "spiking"


def _residual_inputs(layer: Any, node: Any, entry: dict) -> list:
    scales = layer.current_scales or [1.0] * len(node.input_tensors)
    count = len(node.input_tensors)
    sums = [np.concatenate([b[i] for b in entry["sums"]]) for i in range(count)]
    q_sums = [np.concatenate([b[i] for b in entry["q_sums"]]) for i in range(count)]
    magnitude = [float(np.mean(np.abs(w * s))) for w, s in zip(scales, sums)]
    total = sum(magnitude) or 1.0
    out = []
    for i, tensor in enumerate(node.input_tensors):
        producer, _ = producer_of(tensor)
        source = producer.name if producer is not None else "?"
        reference = float(np.mean(np.abs(q_sums[i])))
        deviation = float(np.mean(np.abs(sums[i] - q_sums[i]))) / reference if reference else float("nan")
        out.append({"source": source, "share": magnitude[i] / total, "deviation": deviation})
    return out


def _top1_error(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    predict = tf.function(lambda batch: model(batch, training=False))
    wrong = 0
    for start, batch in _batches(x, batch_size):
        logits = np.asarray(predict(tf.constant(batch)))
        wrong += int(np.sum(np.argmax(logits, axis=-1) != y[start:start + len(batch)]))
    return wrong / len(x)


def _prefix_errors(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> list:
    from tandem_keras.conversion.progressive import stages

    hybrid = _copy_in_mode(model, "quantized")
    groups = stages(hybrid)
    out = []
    for k in range(len(groups) + 1):
        for i, group in enumerate(groups, start=1):
            for name in group:
                hybrid.get_layer(name).mode = "tandem" if i <= k else "quantized"
        spiking = [n for n in groups[k - 1] if hybrid.get_layer(n).get_config().get("threshold")] if k else []
        out.append((k, spiking[0] if spiking else (groups[k - 1][0] if k else None),
                    _top1_error(hybrid, x, y, batch_size)))
    return out


__all__ = ["COLUMNS", "Diagnosis", "diagnose"]
