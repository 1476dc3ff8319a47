"""``tk.count_synops`` and ``tk.summary``: a model's spiking activity, SynOps and energy.

``count_synops(model, x)`` runs the model on data and reports (Eq. 13-14). ``summary`` is in
the spirit of ``model.summary()``. Without data: every spiking and weighted layer with
its kind, neurons, mean fan-out and ANN MACs (Eq. 14), and the time steps. With data
``x``: also each spiking layer's average spike count per neuron ``mean_j c_j``, firing
rate ``c / T``, SynOps ``sum_j fanout_j c_j`` (Eq. 13), and the totals and energy on a
registered device (:func:`tandem_keras.register_device`).

Example:
    >>> import keras, numpy as np, tandem_keras as tk
    >>> m = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2, name="enc"),
    ...     tk.TandemDense(3, batch_norm=False, name="fc"), tk.SpikeCount(),
    ...     keras.layers.Dense(2, name="out")])
    >>> _ = tk.summary(m)                               # doctest: +NORMALIZE_WHITESPACE
    layer  kind     neurons  fan-out  ANN MACs
    ------------------------------------------
    enc    encoder        4      3.0         0
    fc     tandem         3      2.0        12
    out    readout        2      0.0         6
    ------------------------------------------
    time steps: 2   inference time steps: 4   ANN MACs per example: 18
    >>> report = tk.summary(m, np.array([[2., 0., 1., 5.]], "float32"), print_fn=None)
    >>> report["layers"][0]["synops"]   # encoder spikes 2+0+1+2 = 5, each reaching 3 neurons
    15.0
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from tandem_keras.synops.accounting import ActivityAccumulator, row_fanout
from tandem_keras.synops.graph import activity_model, describe_model


def count_synops(model: Any, x: Any, batch_size: int = 64, device: Any = None) -> dict:
    """SynOps of ``model`` on inputs ``x`` (per example), walking the Keras graph.

    ``x``: an array of inputs (run in batches of ``batch_size``; for a model with several
    inputs a list of arrays, one per input, or a dict by input name) or a
    ``tf.data.Dataset`` of input batches or ``(inputs, labels)`` batches. ``device``: energy figures of a
    registered device (default ``"horowitz_45nm"``).

    ``SynOps_SNN = sum_l sum_j fanout_j^l c_j^l`` averaged over the examples of ``x``
    (Eq. 13), against ``SynOps_ANN = sum_l fanin^l N^l`` (Eq. 14); see
    :meth:`ActivityAccumulator.report` for the keys.

    Example:
        >>> import numpy as np, keras, tandem_keras as tk
        >>> m = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2),
        ...                       tk.TandemDense(3, batch_norm=False), tk.SpikeCount()])
        >>> r = count_synops(m, np.array([[2., 0., 1., 5.]], "float32"))
        >>> r["synops_snn"]        # encoder spikes 2+0+1+2 = 5, each reaching 3 neurons
        15.0
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    accumulator = ActivityAccumulator(describe_model(model))
    act = activity_model(model)
    for batch in _batches(x, int(batch_size), len(act.inputs)):
        outputs = act(batch, training=False)
        accumulator.update({k: np.asarray(v) for k, v in outputs.items() if k != "logits"})
    if accumulator.num_examples == 0:
        raise ValueError("count_synops got no examples")
    return accumulator.report(device)


def _batches(x: Any, batch_size: int, num_inputs: int):
    """Batches of ``x`` (see :func:`count_synops`) for a model of ``num_inputs`` inputs."""
    if hasattr(x, "as_numpy_iterator"):  # batches x, or (x, y[, w]) as Keras's fit reads them
        yield from (b[0] if isinstance(b, tuple) else b for b in x.as_numpy_iterator())
        return
    if isinstance(x, dict) or (num_inputs > 1 and isinstance(x, (list, tuple))):
        arrays = {k: np.asarray(v) for k, v in x.items()} if isinstance(x, dict) else [np.asarray(v) for v in x]
        values = list(arrays.values()) if isinstance(arrays, dict) else arrays
        if len(values) != num_inputs or len({len(v) for v in values}) != 1:
            raise ValueError(f"x must hold one array per model input ({num_inputs}), each with the "
                             f"same number of examples; got {len(values)} arrays of "
                             f"{[len(v) for v in values]} examples")
        for i in range(0, len(values[0]), batch_size):
            if isinstance(arrays, dict):
                yield {k: v[i:i + batch_size] for k, v in arrays.items()}
            else:
                yield [v[i:i + batch_size] for v in arrays]
        return
    if num_inputs > 1:
        raise ValueError(f"the model has {num_inputs} inputs: give x as a list of {num_inputs} "
                         "arrays (or a dict by input name)")
    x = np.asarray(x)
    yield from (x[i:i + batch_size] for i in range(0, len(x), batch_size))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 2) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths)))

    rule = "-" * len(fmt(header))
    return [fmt(header), rule, *(fmt(r) for r in rows), rule]


def format_description(description: Mapping[str, Any]) -> str:
    """The table of :func:`tandem_keras.describe_model` (no data: structure and MACs)."""
    rows = []
    for row in description["layers"]:
        fan = row_fanout(row).mean() if row["spiking"] else 0.0
        rows.append((row["name"], row["kind"], f"{row['neurons']:,}", f"{fan:.1f}",
                     f"{row['macs']:,}"))
    lines = _table(("layer", "kind", "neurons", "fan-out", "ANN MACs"), rows)
    total = sum(r["macs"] for r in description["layers"])
    lines.append(f"time steps: {description['time_steps']}   inference time steps: "
                 f"{description['inference_time_steps']}   ANN MACs per example: {total:,}")
    return "\n".join(lines)


def format_report(report: Mapping[str, Any]) -> str:
    """An aligned text table of a SynOps report (:func:`tandem_keras.count_synops`)."""
    header = ("layer", "kind", "neurons", "spikes/neuron", "rate", "fan-out", "SynOps", "ANN MACs")
    rows = []
    for e in report["layers"]:
        spikes = "-" if e["avg_spike_count"] is None else f"{e['avg_spike_count']:.3f}"
        rate = "-" if e["firing_rate"] is None else f"{e['firing_rate']:.3f}"
        rows.append((e["name"], e["kind"], f"{e['neurons']:,}", spikes, rate,
                     f"{e['mean_fanout']:.1f}", f"{e['synops']:,.0f}", f"{e['ann_macs']:,}"))
    out = _table(header, rows)
    out.append(f"SynOps per example: SNN {report['synops_snn']:,.0f} ACs "
               f"(+ encoder {report['encoder_macs']:,} MACs), ANN {report['synops_ann']:,} MACs, "
               f"ratio {report['synops_ratio']:.3f}")
    device = f" ({report['device']})" if report.get("device") else ""
    out.append(f"Energy per example{device}: SNN {report['energy_snn_joules']:.3e} J, "
               f"ANN {report['energy_ann_joules']:.3e} J")
    return "\n".join(out)


def summary(model: Any, x: Any = None, print_fn: Optional[Callable[[str], Any]] = print,
            batch_size: int = 64, device: Any = None) -> dict:
    """Prints the spiking summary of ``model``; returns the description or the report.

    Args:
      model: a functional or Sequential tandem model.
      x: optional inputs (an array; a list of arrays or a dict for a model of several
        inputs; or a ``tf.data.Dataset`` of batches): with them, spike counts, firing rates,
        SynOps and energy per example (:func:`count_synops`).
      print_fn: called with the table (``None``: print nothing).
      batch_size: batch size for running ``x``.
      device: a registered device name for the energy figures (default ``"horowitz_45nm"``).

    Returns:
      ``tk.describe_model(model)`` without ``x``; ``tk.count_synops(model, x)`` with it.
    """
    if x is None:
        result = describe_model(model)
        text = format_description(result)
    else:
        result = count_synops(model, x, batch_size=batch_size, device=device)
        text = format_report(result)
    if print_fn is not None:
        print_fn(text)
    return result
