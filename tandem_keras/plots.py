"""Matplotlib figures of the paper's analyses, written as PNG files (optional extra "plots").

* :func:`plot_spike_counts`: average spike count per neuron per layer (Fig. 11);
* :func:`plot_spike_raster` and :func:`plot_count_maps`: spike raster and spike-count maps
  of one example (Fig. 3; with the coupled ANN's counts as a second row if given);
* :func:`plot_error_vs_time_steps`: test error against the encoding window (Fig. 8B);
* :func:`plot_error_curves`: several error curves, per epoch (Fig. 8A) or per T (Fig. 8B);
* :func:`plot_direction_preservation`: angles and Pearson correlations (Fig. 9);
* :func:`plot_representation_error`: ANN vs SNN spike-count discrepancy (Fig. 7C);
* :func:`plot_synops`: operations per receiving layer, SNN against ANN (Table II).

Every function takes a ``path``, writes the figure there (creating the directory) and
returns the path. The non-interactive ``Agg`` backend is used.

Example:
    >>> import tempfile, os
    >>> report = {"inference_time_steps": 16, "layers": [
    ...     {"name": "encoder", "avg_spike_count": 1.2}, {"name": "conv1", "avg_spike_count": 0.4}]}
    >>> p = plot_spike_counts(report, os.path.join(tempfile.mkdtemp(), "fig11.png"))
    >>> open(p, "rb").read(4)
    b'\\x89PNG'
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    _pyplot().close(fig)
    return path


def plot_spike_counts(reports: Mapping[str, Any] | Sequence[Mapping[str, Any]], path: str,
                      labels: Optional[Sequence[str]] = None) -> str:
    """Fig. 11: bars of the average spike count per neuron of every spiking layer.

    ``reports``: one SynOps report (``tandem_keras.synops.ActivityAccumulator.report()``
    or the eval JSON) or several (grouped bars, e.g. T=5 and T=10); ``labels`` default
    to ``"T = <time_steps> (<inference_time_steps> inference steps)"``.
    """
    plt = _pyplot()
    reports = [reports] if isinstance(reports, Mapping) else list(reports)
    if not reports:
        raise ValueError("plot_spike_counts needs at least one report")
    labels = list(labels) if labels else [
        f"T = {r.get('time_steps', '?')} ({r.get('inference_time_steps', '?')} inference steps)"
        for r in reports]
    names = [e["name"] for e in reports[0]["layers"] if e.get("avg_spike_count") is not None]
    if not names:
        raise ValueError("the report has no spiking layer")
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.8 * len(names)), 3.5))
    width = 0.8 / len(reports)
    for i, (report, label) in enumerate(zip(reports, labels)):
        values = {e["name"]: e.get("avg_spike_count") for e in report["layers"]}
        heights = [values.get(n) or 0.0 for n in names]
        ax.bar(np.arange(len(names)) + (i - (len(reports) - 1) / 2) * width, heights, width,
               label=label)
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_ylabel("average spike count per neuron")
    ax.legend()
    return _save(fig, path)


def plot_spike_raster(trains: Mapping[str, np.ndarray], path: str, max_neurons: int = 200,
                      seed: int = 0) -> str:
    """Fig. 3 (raster): spikes of one example, ``{layer: [T, ...]}`` -> one panel per layer.

    Up to ``max_neurons`` neurons per layer are shown (a fixed random subset, firing
    ones first), time on the x axis.
    """
    plt = _pyplot()
    if not trains:
        raise ValueError("plot_spike_raster needs the spike trains of at least one layer")
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(1, len(trains), figsize=(2.6 * len(trains), 3.2), squeeze=False)
    for ax, (name, train) in zip(axes[0], trains.items()):
        train = np.asarray(train)
        steps = train.shape[0]
        flat = train.reshape(steps, -1)
        firing = np.flatnonzero(flat.sum(0) > 0)
        silent = np.flatnonzero(flat.sum(0) == 0)
        chosen = np.concatenate([rng.permutation(firing), rng.permutation(silent)])[:max_neurons]
        t, j = np.nonzero(flat[:, chosen])
        ax.scatter(t + 1, j, s=16, marker="|", color="black")
        ax.set_xlim(0.5, steps + 0.5)
        ax.set_ylim(-1, len(chosen))
        ax.set_title(f"{name}\n{int(flat.sum())} spikes", fontsize=8)
        ax.set_xlabel("time step")
    axes[0][0].set_ylabel("neuron")
    return _save(fig, path)


def plot_count_maps(counts: Mapping[str, np.ndarray], path: str,
                    ann_counts: Optional[Mapping[str, np.ndarray]] = None, max_maps: int = 8,
                    time_steps: Optional[int] = None) -> str:
    """Fig. 3 (maps): spike-count maps ``[H, W, C]`` of one example, first ``max_maps`` channels.

    One row per convolutional layer (``counts[layer]`` of rank 3); with ``ann_counts``
    a second row per layer shows the coupled ANN's counts ``a`` (as in the paper).
    Colour scale ``[0, time_steps]`` (default: the largest count).
    """
    plt = _pyplot()
    maps = {k: np.asarray(v) for k, v in counts.items() if np.ndim(v) == 3}
    if not maps:
        raise ValueError("plot_count_maps needs at least one [H, W, C] count map")
    rows = []
    for name, value in maps.items():
        rows.append((f"{name} (SNN c)", value))
        if ann_counts is not None and name in ann_counts:
            rows.append((f"{name} (ANN a)", np.asarray(ann_counts[name])))
    vmax = time_steps or max(float(v.max()) for _, v in rows) or 1.0
    cols = min(max_maps, max(v.shape[-1] for _, v in rows))
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.2 * cols + 1.5, 1.3 * len(rows)),
                             squeeze=False)
    image = None
    for r, (label, value) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < value.shape[-1]:
                image = ax.imshow(value[:, :, c], vmin=0, vmax=vmax, cmap="viridis")
        axes[r][0].set_title(label, fontsize=7, loc="left")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="spike count")
    # no tight_layout: it does not handle the shared colour bar
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
    return path


def plot_error_vs_time_steps(time_steps: Sequence[int], errors: Sequence[float], path: str,
                             label: str = "SNN", ylabel: str = "test error (%)") -> str:
    """Fig. 8B: error (percent) as a function of the encoding window T."""
    plt = _pyplot()
    if len(time_steps) != len(errors) or not len(time_steps):
        raise ValueError(f"need as many errors as time steps, got {len(time_steps)} and {len(errors)}")
    order = np.argsort(time_steps)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(np.asarray(time_steps)[order], np.asarray(errors, float)[order], "o-", label=label)
    ax.set_xlabel("encoding time window T")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_direction_preservation(preservation: Mapping[str, Mapping[str, Any]], path: str) -> str:
    """Fig. 9: per tandem layer, distributions over examples of the angle between the SNN
    and coupled-ANN counts (degrees) and of the PCC of the weight-activation products
    (the output of ``tandem_keras.analysis.direction_preservation``)."""
    plt = _pyplot()
    if not preservation:
        raise ValueError("plot_direction_preservation needs at least one layer")
    names = list(preservation)

    def clean(values):
        values = np.asarray(values if values is not None else [], float)
        values = values[np.isfinite(values)]
        return values if values.size else np.array([np.nan])

    fig, (left, right) = plt.subplots(1, 2, figsize=(max(6.0, 1.6 * len(names) + 2), 3.4))
    left.boxplot([clean(preservation[n]["angle_deg"]) for n in names])
    left.set_ylabel("angle between c and a (degrees)")
    right.boxplot([clean(preservation[n]["pcc"]) for n in names])
    right.set_ylabel("PCC of W c and W a")
    for ax in (left, right):
        ax.set_xticks(np.arange(1, len(names) + 1))
        ax.set_xticklabels(names, rotation=45, ha="right")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_error_curves(curves: Mapping[str, Any], path: str, xlabel: str = "epoch",
                      ylabel: str = "validation error (%)", log2_x: bool = False) -> str:
    """Fig. 8A / 8B: one line per label. ``curves[label]`` is a sequence (x = 1, 2, ...:
    epochs) or a mapping ``{x: y}`` (e.g. ``{T: error}``); ``log2_x`` for windows T."""
    plt = _pyplot()
    if not curves:
        raise ValueError("plot_error_curves needs at least one curve")
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    xs: set = set()
    for label, values in curves.items():
        points = (dict(values) if isinstance(values, Mapping)
                  else {i + 1: v for i, v in enumerate(values)})
        order = sorted(points)
        xs.update(order)
        ax.plot(order, [points[x] for x in order], "o-", label=label)
    if log2_x:
        ax.set_xscale("log", base=2)
        ax.get_xaxis().set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
    ax.set_xticks(sorted(xs))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_representation_error(rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Mapping[str, Any]]],
                              path: str) -> str:
    """Fig. 7C: mean absolute spike-count difference per neuron, SNN vs quantized ANN, per
    layer (the output of ``tandem_keras.analysis.representation_error``): bars for one
    model, or one line per label for ``{label: rows}`` (e.g. several windows T)."""
    plt = _pyplot()
    if not rows:
        raise ValueError("plot_representation_error needs at least one layer")
    if isinstance(rows, Mapping):
        fig, ax = plt.subplots(figsize=(5.6, 3.4))
        names: list = []
        for label, series in rows.items():
            names = [r["name"] for r in series]
            ax.plot(np.arange(len(series)), [r["mean_abs_diff"] for r in series], "o-",
                    label=label)
        ax.set_xticks(np.arange(len(names)))
        ax.set_xticklabels(names, rotation=40, ha="right", fontsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    else:
        fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.8 * len(rows)), 3.2))
        ax.bar([r["name"] for r in rows], [r["mean_abs_diff"] for r in rows])
        ax.tick_params(axis="x", rotation=45)
    ax.set_ylabel("mean |c - a| per neuron")
    return _save(fig, path)


def plot_synops(reports: Mapping[int, Mapping[str, Any]], path: str) -> str:
    """Table II: operations per receiving layer, SNN accumulates (spikes x fan-out of the
    layer below, Eq. 13) against ANN MACs (Eq. 14), one bar group per window T.

    ``reports``: ``{T: tandem_keras.count_synops(...)}``. The analog encoder
    convolution runs once on the image: its MACs are drawn for the SNN too (they are in
    ``synops_ratio_with_encoder``, not in ``synops_ratio``).
    """
    plt = _pyplot()
    if not reports:
        raise ValueError("plot_synops needs at least one report")
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    ts = sorted(reports)
    layers = reports[ts[0]]["layers"]
    names = [e["name"] for e in layers]
    total_ann = reports[ts[0]]["synops_ann"]
    width = 0.8 / len(ts)
    for i, t in enumerate(ts):
        sent = [e["synops"] for e in reports[t]["layers"] if e["avg_spike_count"] is not None]
        received = [reports[t]["encoder_macs"]] + sent  # spikes of layer l land in layer l+1
        received += [0.0] * (len(names) - len(received))
        ax.bar(np.arange(len(names)) + (i - (len(ts) - 1) / 2) * width,
               np.asarray(received[:len(names)]) / total_ann, width,
               label=f"SNN, T={t}: ratio {reports[t]['synops_ratio']:.3f} "
                     f"({reports[t]['synops_ratio_with_encoder']:.3f} with encoder)")
    ax.plot(np.arange(len(names)), [e["ann_macs"] / total_ann for e in layers], "k_",
            markersize=14, mew=2, label="ANN MACs")
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("operations / total ANN MACs")
    ax.legend(fontsize=6)
    return _save(fig, path)
