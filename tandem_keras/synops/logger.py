"""Keras callbacks: spiking activity and SynOps to TensorBoard during training.

Example:
    >>> logger = ActivityLogger(log_dir="logs", data=x_val[:64])        # doctest: +SKIP
    >>> model.fit(x, y, epochs=10, callbacks=[logger])                 # doctest: +SKIP

then ``tensorboard --logdir logs``: under ``activity/`` the average spike count per
neuron of every spiking layer, its SynOps (Eq. 13) per example, the total SNN SynOps,
the ANN MACs (Eq. 14) and their ratio. The same figures go into Keras's epoch ``logs``
(``synops/total_snn``, ``synops/ratio``, ``spike_count/<layer>``, ...), so that callbacks
after it (``CSVLogger``, ``EarlyStopping(monitor="synops/total_snn")``, ``TensorBoard``,
``History``)
see them like any metric: put it before them in the callbacks list.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf

from tandem_keras.synops.accounting import ActivityAccumulator
from tandem_keras.synops.graph import activity_model, describe_model


class ActivityLogger(keras.callbacks.Callback):
    """Logs per-layer average spike counts and SynOps on a fixed batch to TensorBoard.

    At the end of every ``every_n_epochs``-th epoch the model runs in inference mode
    on ``data`` and writes, to ``<log_dir>/activity``, the scalars

    * ``spike_count/<layer>``: average spike count per neuron, ``mean_{b,j} c_j``;
    * ``firing_rate/<layer>``: that divided by T;
    * ``synops/<layer>``: ``mean_b sum_j fanout_j c_j`` (Eq. 13);
    * ``synops/total_snn``, ``synops/ann`` (Eq. 14, constant) and ``synops/ratio``.

    The last values are also kept in ``self.last_report`` (see
    :meth:`tandem_keras.synops.ActivityAccumulator.report`), and written into the epoch's
    Keras ``logs`` under the same names (``spike_count/<layer>``, ``firing_rate/<layer>``,
    ``synops/<layer>``, ``synops/total_snn``, ``synops/ratio``), for the callbacks that
    come after this one in the list (``CSVLogger``, ``EarlyStopping``, ``History``).

    Args:
      log_dir: TensorBoard log directory (the same as ``keras.callbacks.TensorBoard``'s);
        ``None``: no TensorBoard file (the figures still go into ``logs``).
      data: a batch of model inputs (array or tensor), an ``(inputs, labels)`` tuple, or a
        ``tf.data.Dataset`` of such batches (its first batch is used).
      every_n_epochs: logging period in epochs (>= 1).
    """

    def __init__(self, log_dir: Optional[str], data: Any, every_n_epochs: int = 1) -> None:
        super().__init__()
        if int(every_n_epochs) < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.log_dir = log_dir
        self.every_n_epochs = int(every_n_epochs)
        self.data = self._first_batch(data)
        self.last_report: Optional[dict] = None
        self._writer = None
        self._activity = None
        self._description = None

    @staticmethod
    def _first_batch(data: Any) -> np.ndarray:
        if isinstance(data, tf.data.Dataset):
            data = next(iter(data))
        if isinstance(data, (tuple, list)):
            data = data[0]
        data = np.asarray(data)
        if data.ndim < 2 or len(data) == 0:
            raise ValueError(f"ActivityLogger needs a non-empty batch of inputs, got shape {data.shape}")
        return data

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self._description = describe_model(self.model)
        self._activity = activity_model(self.model)
        if self.log_dir is not None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "activity"))

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if (epoch + 1) % self.every_n_epochs:
            return
        accumulator = ActivityAccumulator(self._description)
        outputs = self._activity(self.data, training=False)
        accumulator.update({k: np.asarray(v) for k, v in outputs.items() if k != "logits"})
        report = accumulator.report()
        self.last_report = report
        scalars = self.scalars(report)
        if logs is not None:
            logs.update(scalars)
        if self._writer is not None:
            with self._writer.as_default():
                for name, value in scalars.items():
                    tf.summary.scalar(name, value, epoch)
                tf.summary.scalar("synops/ann", float(report["synops_ann"]), epoch)
            self._writer.flush()

    @staticmethod
    def scalars(report: dict) -> dict:
        """``{name: value}`` of a report: per spiking layer and the totals (see class doc)."""
        out = {}
        for layer in report["layers"]:
            if layer["avg_spike_count"] is None:
                continue
            out[f"spike_count/{layer['name']}"] = float(layer["avg_spike_count"])
            out[f"firing_rate/{layer['name']}"] = float(layer["firing_rate"])
            out[f"synops/{layer['name']}"] = float(layer["synops"])
        out["synops/total_snn"] = float(report["synops_snn"])
        out["synops/ratio"] = float(report["synops_ratio"])
        return out

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
