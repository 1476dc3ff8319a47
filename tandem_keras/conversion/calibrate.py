"""Threshold calibration: a percentile of each spiking layer's ANN activation.

The converted model in ``"ann"`` mode computes the ANN exactly, and each spiking layer's
output there is its ANN activation in units of its threshold, ``a_l = relu(V_l) / theta_l``.
:func:`activation_percentiles` reads the ``p``-th percentile of every such output over a
few batches (all elements, zeros included, as the authors' progressive tandem learning
code does); ``convert`` then sets ``theta_l <- theta_l * P_p(a_l) / T`` so that an activation
at the percentile makes ``T`` spikes.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

#: at most this many values of one layer are kept per batch (a strided subsample)
MAX_VALUES_PER_BATCH = 1 << 20


def batches(data: Any, batch_size: int, count: int) -> Iterable[Any]:
    """Up to ``count`` input batches of ``data``: an array (or a tuple ``(x, y)`` of
    arrays), a ``tf.data.Dataset`` of batches ``x`` or ``(x, y[, w])``, or any iterable of
    such batches."""
    if isinstance(data, tuple) and data and hasattr(data[0], "shape"):
        data = data[0]
    if isinstance(data, np.ndarray) or tf.is_tensor(data):
        data = np.asarray(data)
        n = min(len(data), batch_size * count)
        return (data[i:i + batch_size] for i in range(0, n, batch_size))
    iterator = iter(data)

    def inputs(element):
        return element[0] if isinstance(element, (tuple, list)) else element

    return (inputs(e) for e in itertools.islice(iterator, count))


def activation_percentiles(model: keras.Model, names: Sequence[str], data: Any, percentile: float,
                           batch_size: int = 64, count: int = 8) -> dict[str, float]:
    """``{name: percentile of the layer's output over the batches}`` for the layers ``names``
    of ``model`` (run with ``training=False``)."""
    if not names:
        return {}
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}.")
    inputs = model.inputs if len(model.inputs) > 1 else model.inputs[0]
    probe = keras.Model(inputs, [model.get_layer(n).output for n in names])
    seen: dict[str, list] = {n: [] for n in names}
    used = 0
    for x in batches(data, batch_size, count):
        outputs = probe(x, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for name, out in zip(names, outputs):
            values = np.asarray(out, dtype=np.float32).reshape(-1)
            step = max(1, len(values) // MAX_VALUES_PER_BATCH)
            seen[name].append(values[::step])
        used += 1
    if not used:
        raise ValueError("tk.convert: calibration_data gave no batches.")
    return {n: float(np.percentile(np.concatenate(seen[n]), percentile)) for n in names}
