"""Top-k accuracy with one tie rule, shared by training metrics and ``python -m eval``.

The rule: classes are ranked by logit, highest first, and **tied logits are ranked by
class index, lower index first**. The label is a top-k hit when its rank is below ``k``::

    rank(y) = #{j : l_j > l_y} + #{j < y : l_j == l_y}        hit  <=>  rank(y) < k

This is the order of ``np.argsort(-logits, kind="stable")``, of ``tf.math.top_k`` and of
``argmax`` (first maximum), so ``model.predict(x).argmax(-1)`` agrees with the top-1
metric. Keras's own ``SparseTopKCategoricalAccuracy`` (``tf.math.in_top_k``) instead counts
every class tied with the k-th logit as a hit, which with integer spike-count logits
(ties on many images at small T) reports a better top-k than any prediction achieves.

Logits with NaN are never "ahead" of the label (comparisons with NaN are false); a model
that outputs NaN should be refused before it is scored.
"""

from __future__ import annotations

import numbers
from typing import Any

import keras
from keras import ops


def top_k_hits(logits: Any, labels: Any, k: int):
    """Whether each label is among the first ``k`` classes under the tie rule above.

    Args:
      logits: ``[batch, classes]`` scores (NumPy array or tensor).
      labels: ``[batch]`` (or ``[batch, 1]``) integer class indices.
      k: number of top classes that count (integer >= 1).

    Returns:
      ``[batch]`` boolean tensor (``np.asarray`` it for NumPy).

    Example:
      >>> import numpy as np
      >>> logits = np.array([[2.0, 3.0, 3.0], [1.0, 1.0, 1.0]])
      >>> np.asarray(top_k_hits(logits, np.array([2, 1]), k=1)).tolist()   # ties -> class 1, 0
      [False, False]
      >>> np.asarray(top_k_hits(logits, np.array([2, 1]), k=2)).tolist()
      [True, True]
    """
    k = _check_k(k, "top_k_hits")
    logits = ops.convert_to_tensor(logits)
    if len(logits.shape) != 2:
        raise ValueError(f"top_k_hits: logits must be [batch, classes], got shape {tuple(logits.shape)}.")
    labels = ops.reshape(ops.cast(ops.convert_to_tensor(labels), "int32"), [-1, 1])
    label_logit = ops.take_along_axis(logits, labels, axis=1)             # [batch, 1]
    index = ops.expand_dims(ops.arange(ops.shape(logits)[1], dtype="int32"), 0)
    ahead = ops.logical_or(
        ops.greater(logits, label_logit),
        ops.logical_and(ops.equal(logits, label_logit), ops.less(index, labels)))
    rank = ops.sum(ops.cast(ahead, "int32"), axis=1)
    return ops.less(rank, k)


def sparse_top_k_accuracy(y_true: Any, y_pred: Any, k: int = 5):
    """``top_k_hits`` as a float ``[batch]`` tensor of 1.0 / 0.0 (a Keras metric function).

    Example:
      >>> import numpy as np
      >>> np.asarray(sparse_top_k_accuracy(np.array([1]), np.array([[5.0, 5.0, 0.0]]), k=1)).tolist()
      [0.0]
    """
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) > 2:
        y_pred = ops.reshape(y_pred, [-1, y_pred.shape[-1]])
    return ops.cast(top_k_hits(y_pred, y_true, k), keras.backend.floatx())


@keras.saving.register_keras_serializable(package="tandem_keras")
class SparseTopKAccuracy(keras.metrics.MeanMetricWrapper):
    """Fraction of examples whose integer label is a top-k hit, ties to the lower class index.

    The Keras metric of :func:`top_k_hits`: drop-in for
    ``keras.metrics.SparseTopKCategoricalAccuracy`` (which counts tied classes as hits);
    with ``k=1`` it equals ``SparseCategoricalAccuracy`` (argmax).

    Example:
      >>> import numpy as np
      >>> metric = SparseTopKAccuracy(k=2, name="top2")
      >>> metric.update_state(np.array([2, 0]), np.array([[1.0, 1.0, 1.0], [0.0, 4.0, 4.0]]))
      >>> float(metric.result())
      0.0
    """

    def __init__(self, k: int = 5, name: str = "sparse_top_k_accuracy", dtype: Any = None) -> None:
        self.k = _check_k(k, "SparseTopKAccuracy")
        super().__init__(fn=sparse_top_k_accuracy, name=name, dtype=dtype, k=self.k)
        self._direction = "up"

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "k": self.k}


def _check_k(k: Any, owner: str) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"{owner}: k must be an integer >= 1, got {k!r}.")
    k = int(k)
    if k < 1:
        raise ValueError(f"{owner}: k must be an integer >= 1, got {k}.")
    return k
