"""ANN vs SNN spike counts: representation error (Fig. 7C) and direction preservation (Fig. 9).

Two comparisons from the paper, Section III-C and III-E, on the same weights:

* :func:`representation_error` (Fig. 7C, constrain-then-train): the bounded quantized
  ANN (``mode="quantized"``, ``a^l = min(floor(max(V_f^l, 0)/theta), T)``, each layer fed
  by the ANN's own previous layer) against the SNN (``mode="tandem"``, spike counts
  ``c^l`` of IF neurons fed by the SNN's previous layer). Per spiking layer: mean
  ``|c^l - a^l|`` per neuron. The error accumulates with depth, because each network
  propagates its own representation.
* :func:`direction_preservation` (Fig. 9, the tandem network): in each tandem layer the
  coupled ANN predicts ``a^l = clip(V_f^l / theta, 0, T)`` from the *SNN's* input counts
  ``c^{l-1}`` (``V_f = W' c^{l-1} + b'``, BN folded with the moving statistics), while
  the SNN emits ``c^l``. Per example: the angle ``arccos(<c, a> / (|c| |a|))`` between
  the vectorised ``c^l`` and ``a^l`` (degrees), and the Pearson correlation between the
  weight-activation products ``W^{l+1} c^l`` and ``W^{l+1} a^l`` of the next layer(s)
  (its raw kernel: the input of its batch normalization). The paper reports angles
  below 24 degrees on average and correlations above 0.9 on CIFAR-10 (two random
  high-dimensional vectors are nearly orthogonal; binarizing one moves it ~37 degrees).

Example:
    >>> import keras, numpy as np, tandem_keras as tk
    >>> m = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(3, name="enc"),
    ...     tk.TandemDense(3, batch_norm=False, name="h"), tk.SpikeCount(),
    ...     keras.layers.Dense(2, name="out")])
    >>> x = np.random.default_rng(0).uniform(0, 3, (8, 4)).astype("float32")
    >>> sorted(direction_preservation(m, x)["h"])
    ['angle_deg', 'ann_counts', 'pcc', 'snn_counts']
    >>> representation_error(m, x)[0]["name"]
    'enc'
"""

from __future__ import annotations

from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf

from tandem_keras import kinds, synops
from tandem_keras._nested import flat


def cosine_angle_degrees(c: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Per-example angle (degrees) between ``c[b].ravel()`` and ``a[b].ravel()``.

    ``angle = arccos(<c, a> / (|c| |a|))``; NaN when either vector is all zero.

    Example:
        >>> cosine_angle_degrees(np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]])).round(6)
        array([45.])
    """
    c = np.asarray(c, np.float64).reshape(len(c), -1)
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    norm = np.linalg.norm(c, axis=1) * np.linalg.norm(a, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norm > 0, np.sum(c * a, axis=1) / norm, np.nan)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def pearson(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Per-example Pearson correlation of ``u[b].ravel()`` and ``v[b].ravel()`` (NaN if constant).

    Example:
        >>> pearson(np.array([[1.0, 2.0, 3.0]]), np.array([[2.0, 4.0, 7.0]])).round(4)
        array([0.9934])
    """
    u = np.asarray(u, np.float64).reshape(len(u), -1)
    v = np.asarray(v, np.float64).reshape(len(v), -1)
    u = u - u.mean(axis=1, keepdims=True)
    v = v - v.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, np.sum(u * v, axis=1) / norm, np.nan)


def _predict(model: keras.Model, x: np.ndarray, batch_size: int) -> dict:
    outputs: dict = {}
    for start in range(0, len(x), batch_size):
        out = model(x[start:start + batch_size], training=False)
        for key, value in out.items():
            outputs.setdefault(key, []).append(np.asarray(value))
    return {k: np.concatenate(v) for k, v in outputs.items()}


def representation_error(model: keras.Model, x: Any, batch_size: int = 64) -> list[dict]:
    """Fig. 7C: spike-count discrepancy, quantized ANN vs SNN, per spiking layer.

    Runs ``tk.with_mode(model, "quantized")`` and ``tk.with_mode(model, "tandem")``
    (same weights) on ``x`` and returns, per spiking layer in graph order,
    ``{"name", "mean_abs_diff", "mean_diff", "snn_mean", "ann_mean"}`` with
    ``mean_abs_diff = mean_{b,j} |c_j - a_j|`` (spike counts per neuron),
    ``mean_diff = mean(c - a)``, ``snn_mean = mean(c)`` and ``ann_mean = mean(a)``.
    """
    from tandem_keras.modes import with_mode

    x = np.asarray(x)
    snn = _predict(synops.activity_model(with_mode(model, "tandem"), net=True), x, batch_size)
    ann = _predict(synops.activity_model(with_mode(model, "quantized"), net=True), x, batch_size)
    rows = []
    for name in snn:
        if name == "logits":
            continue
        c, a = snn[name].astype(np.float64), ann[name].astype(np.float64)
        rows.append({"name": name, "mean_abs_diff": float(np.mean(np.abs(c - a))),
                     "mean_diff": float(np.mean(c - a)), "snn_mean": float(np.mean(c)),
                     "ann_mean": float(np.mean(a))})
    return rows


def _apply_op(spec: dict, x: tf.Tensor, kernel: Any = None) -> tf.Tensor:
    """One op of a chain (:mod:`tandem_keras.synops.ops`) on ``x`` ``[batch, *input_shape]``;
    a weighted op with ``kernel`` (its raw weights; identity synapses: the values)."""
    kind = spec["type"]
    if kind == "avg_pool2d":
        return tf.nn.avg_pool2d(x, spec["pool_size"], spec["strides"], spec["padding"].upper())
    if kind == "global_avg_pool2d":
        return tf.reduce_mean(x, axis=[1, 2], keepdims=bool(spec.get("keepdims")))
    if kind == "concat":  # this input's slice of the concatenation, zeros elsewhere
        axis, n = spec["axis"] + 1, x.shape[spec["axis"] + 1]
        pads = [[0, 0]] * x.shape.rank
        pads[axis] = [spec["offset"], spec["size"] - spec["offset"] - n]
        return tf.pad(x, pads)
    kernel = tf.cast(kernel, tf.float32)
    if kind == "identity":  # the weight w_i of a TandemAdd input
        return x * kernel
    if kind == "conv2d":
        return tf.nn.conv2d(x, kernel, strides=spec["strides"], padding=spec["padding"].upper(),
                            dilations=spec.get("dilation_rate", 1))
    if kind == "depthwise_conv2d":
        return tf.nn.depthwise_conv2d(x, kernel, [1, *spec["strides"], 1], spec["padding"].upper(),
                                      dilations=spec.get("dilation_rate", None))
    return tf.tensordot(x, kernel, axes=1)  # dense


def _apply_chain(chain: list, values: np.ndarray, kernel: Any) -> np.ndarray:
    """The composite map of ``chain`` (reshapes implicit) on ``values`` ``[batch, ...]``."""
    x = tf.constant(values, tf.float32)
    for spec in chain:
        x = _apply_op(spec, tf.reshape(x, [len(values), *spec["input_shape"]]), kernel)
    return x.numpy()


def _kernel(layer: Any, spec: dict) -> Any:
    """The raw weights of the weighted op ``spec`` of ``layer`` (TandemAdd: its input's scale)."""
    if spec["type"] == "identity":
        scales = getattr(layer, "scales", None)
        return np.float32(scales[spec.get("input", 0)] if scales else 1.0)
    inner = getattr(layer, "layer", layer)  # TimeDistributed
    return inner.kernel


ROUNDINGS = (None, "floor")


def direction_preservation(model: keras.Model, x: Any, batch_size: int = 64,
                           rounding: Optional[str] = None) -> dict:
    """Fig. 9: per tandem layer, angle between SNN counts and coupled-ANN counts, and PCC.

    Returns ``{layer name: {"snn_counts": c [batch, ...], "ann_counts": a [batch, ...],
    "angle_deg": [batch], "pcc": [batch] or None}}`` for every layer with neurons and a
    coupled ANN (tandem layers, ``TandemAdd``), where ``a = clip(V_f / theta + v0, 0, T)``
    from the SNN's inputs (``v0``: the neuron's ``initial_potential``): for a tandem layer
    ``V_f = W' c_in + b'`` (the input counts, inference BN statistics), for ``TandemAdd``
    ``V_f = sum_i w_i X_i`` (the time-sums of its input trains: counts of the shortcut's
    spikes, ``V_f`` of the branch's current). ``pcc`` correlates ``W_next c`` with
    ``W_next a`` for the weighted layer(s) the spikes reach, through the pooling and merges
    between (the composite map; None for an output layer). A model in another mode (e.g.
    trained ``"quantized"``) is analysed as ``tk.with_mode(model, "tandem")``.

    ``rounding="floor"`` compares ``c`` with the paper's integer counts ``floor(a)``
    (Eq. 11) instead of the unrounded ``a`` the tandem backward pass uses; the rounding
    remainder (Eq. 12) then no longer counts as discrepancy.
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be None or 'floor', got {rounding!r}")
    from tandem_keras.modes import with_mode

    x = np.asarray(x)
    model = flat(model)
    if any(getattr(kinds.unwrap(n.operation), "mode", "tandem") != "tandem"
           for n in synops.graph.spiking_nodes(model)):
        model = with_mode(model, "tandem")  # c must be the SNN's spike counts
    rows = {r["name"]: r for r in synops.describe_model(model)["layers"]}
    tandem_nodes = [n for n in synops.graph.spiking_nodes(model)
                    if rows[n.operation.name]["kind"] in ("tandem", "residual")]
    if not tandem_nodes:
        raise ValueError(f"model {model.name!r} has no tandem layer to analyse")
    outputs = {}
    for node in tandem_nodes:
        name = node.operation.name
        for i, tensor in enumerate(node.input_tensors):
            outputs[f"{name}/in{i}"] = keras.ops.sum(tensor, axis=1)
        outputs[name + "/out"] = keras.ops.sum(node.outputs[0], axis=1)
    counts = _predict(keras.Model(model.inputs[0], outputs), x, batch_size)
    result = {}
    for node in tandem_nodes:
        layer, row = node.operation, rows[node.operation.name]
        c = counts[layer.name + "/out"]
        sums = [counts[f"{layer.name}/in{i}"] for i in range(len(node.input_tensors))]
        if row["kind"] == "residual":  # V = sum_i w_i X_i, X_i the inputs' time-sums
            scales = layer.current_scales or [1.0] * len(sums)
            v_f = sum(np.float32(w) * x_i for w, x_i in zip(scales, sums))
        else:
            kernel, bias = layer.folded_weights(training=False)
            v_f = _apply_chain(row["mac_specs"][:1], sums[0], kernel) + np.asarray(bias, np.float32)
        v0 = float(getattr(getattr(layer, "neuron", None), "rounding", 0.0))
        a = np.clip(v_f / layer.threshold + v0, 0.0, float(layer.time_steps))
        if rounding == "floor":
            a = np.floor(a)
        pcc: Optional[np.ndarray] = None
        if row["fanout_chains"]:
            products_c, products_a = [], []
            for chain in row["fanout_chains"]:
                w = _kernel(model.get_layer(chain[-1]["layer"]), chain[-1])
                products_c.append(_apply_chain(chain, c, w).reshape(len(c), -1))
                products_a.append(_apply_chain(chain, a, w).reshape(len(a), -1))
            pcc = pearson(np.concatenate(products_c, 1), np.concatenate(products_a, 1))
        result[layer.name] = {"snn_counts": c, "ann_counts": a,
                              "angle_deg": cosine_angle_degrees(c, a), "pcc": pcc}
    return result


def summarize(preservation: dict) -> list[dict]:
    """Per-layer statistics of :func:`direction_preservation`: ``{"name", "angle_deg",
    "pcc", "pcc_median"}`` (mean angle, mean and median PCC; NaN examples, e.g. silent
    layers, left out; PCC None for an output layer)."""
    rows = []
    for name, entry in preservation.items():
        angle = entry["angle_deg"]
        pcc = entry["pcc"]
        finite_pcc = pcc is not None and np.isfinite(pcc).any()
        rows.append({
            "name": name,
            "angle_deg": float(np.nanmean(angle)) if np.isfinite(angle).any() else float("nan"),
            "pcc": float(np.nanmean(pcc)) if finite_pcc else None,
            "pcc_median": float(np.nanmedian(pcc)) if finite_pcc else None,
        })
    return rows
