"""Progressive tandem learning as a Keras callback (Wu et al., TPAMI 2021).

A converted model (or any tandem model) starts as its ANN (every spiking layer in
``"ann"`` mode) and its spiking layers are switched to ``"tandem"`` one at a time, input
side first: stage ``k`` runs the first ``k`` spiking layers as the SNN and the rest as the
ANN on their spike counts (an ``"ann"`` layer sums its input over time, so a hybrid model
is the tandem SNN up to layer ``k`` and the ANN after it, and trains with both rules).
The next layer is switched when the monitored metric has not improved for ``patience``
epochs (the authors' rule), optionally after restoring the stage's best weights. Layers
without neurons (synapse-only layers, pooling) switch with the spiking layer before them
in topological order, so every tandem layer reads tandem layers only.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional

import keras

from tandem_keras import kinds
from tandem_keras._keras_internals import all_layers, call_nodes
from tandem_keras._nested import flat


def stages(model: keras.Model, layers_per_stage: int = 1) -> list[list[str]]:
    """The layers with a mode, in topological order, grouped by spiking layer: stage ``k``
    is the ``k``-th spiking layer and the layers without neurons after it (with
    ``layers_per_stage=n``: the ``n`` spiking layers from the ``(n(k-1)+1)``-th on).

    Example:
      >>> import keras, tandem_keras as tk
      >>> m = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3),
      ...     tk.SpikeEncoder(2, name="enc"), tk.AveragePooling2D(name="pool"),
      ...     tk.TandemConv2D(2, 1, name="conv"), tk.SpikeCount(), keras.layers.Flatten(),
      ...     keras.layers.Dense(3)])
      >>> stages(m)
      [['enc', 'pool'], ['conv']]
    """
    groups: list[list[str]] = []
    seen = set()
    nodes, _ = call_nodes(flat(model))
    for node in nodes:
        layer = node.operation
        if id(layer) in seen or not kinds.has_modes(layer):
            continue
        seen.add(id(layer))
        if kinds.has_neurons(layer) or not groups:
            groups.append([])
        groups[-1].append(layer.name)
    return [sum(groups[i:i + layers_per_stage], []) for i in range(0, len(groups), layers_per_stage)]


class ProgressiveTandem(keras.callbacks.Callback):
    """Switches a tandem model's spiking layers from ``"ann"`` to ``"tandem"`` one at a time.

    At the start of ``fit`` the model runs stage ``start_stage`` (default 1: the encoder is
    the SNN, the rest the ANN; see :func:`stages`). After every epoch the ``monitor``ed value
    is compared with the stage's best; after ``patience`` epochs without improvement (by
    more than ``min_delta``), or ``max_epochs_per_stage`` epochs (then an epoch without the
    monitored value, e.g. between ``validation_freq`` epochs, counts only towards that
    limit), the next stage starts
    (with the stage's best weights back if ``restore_best_weights``). The functions of
    ``fit``, ``evaluate`` and ``predict`` are rebuilt for the new modes. Once every layer is
    in tandem mode training goes on as the tandem SNN. ``layers_per_stage`` switches that
    many spiking layers per stage (:func:`stages`). The stage of each epoch is added to
    the epoch's logs as ``progressive_stage`` (for ``CSVLogger``, ``History``). A ``fit`` that
    ends before the last stage leaves a hybrid model: ``set_stage(model)`` makes it the SNN.
    ``final_epochs=n`` keeps the last ``n`` epochs of ``fit`` for the SNN: after epoch
    ``epochs - n`` every layer still in ann mode switches at once (whatever the patience
    rule says), so that a fixed budget always ends with the whole SNN trained. A ``fit``
    whose last epoch ends with a switch warns that the new stage never trained.

    Example:
      >>> import keras, numpy as np, tandem_keras as tk
      >>> ann = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
      ...     keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Flatten(), keras.layers.Dense(3)])
      >>> snn = tk.convert(ann, time_steps=2)
      >>> snn.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
      >>> x, y = np.ones((8, 6, 6, 1), "float32"), np.zeros(8, "int32")
      >>> h = snn.fit(x, y, epochs=3, verbose=0, callbacks=[
      ...     tk.conversion.ProgressiveTandem(monitor="loss", max_epochs_per_stage=1)])
      >>> h.history["progressive_stage"]
      [1, 2, 2]
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 1, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False, start_stage: int = 1,
                 max_epochs_per_stage: Optional[int] = None, layers_per_stage: int = 1,
                 final_epochs: int = 0, verbose: int = 0) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"ProgressiveTandem: mode must be 'auto', 'min' or 'max', got {mode!r}.")
        if patience < 1 or start_stage < 0 or layers_per_stage < 1 or final_epochs < 0:
            raise ValueError("ProgressiveTandem: patience and layers_per_stage must be >= 1, "
                             "start_stage and final_epochs >= 0.")
        self.final_epochs = int(final_epochs)
        self.layers_per_stage = int(layers_per_stage)
        self.monitor, self.patience, self.min_delta = monitor, int(patience), abs(float(min_delta))
        self.lower_is_better = mode == "min" or (mode == "auto" and not any(
            k in monitor for k in ("acc", "top", "auc")))
        self.restore_best_weights = restore_best_weights
        self.start_stage, self.max_epochs = int(start_stage), max_epochs_per_stage
        self.verbose = verbose
        self.stage = self.start_stage
        self.switches: list[int] = []  # epochs (0-based) after which a stage started
        self.last_epoch: Optional[int] = None

    def on_train_begin(self, logs: Any = None) -> None:
        self.groups = stages(self.model, self.layers_per_stage)
        self.stage = min(self.start_stage, len(self.groups))
        self._apply()
        self._reset()

    def _reset(self) -> None:
        self.best, self.best_weights, self.wait, self.epochs_in_stage = None, None, 0, 0

    def _apply(self) -> None:
        set_stage(self.model, self.stage, self.groups)

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.lower_is_better:
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = logs if logs is not None else {}
        logs["progressive_stage"] = self.stage
        self.last_epoch = epoch
        if self.stage >= len(self.groups):
            return
        value = logs.get(self.monitor)
        if value is None and not self.max_epochs:
            raise ValueError(f"ProgressiveTandem monitors {self.monitor!r}, which is not in the "
                             f"epoch's logs ({', '.join(sorted(logs))}).")
        self.epochs_in_stage += 1
        total = (self.params or {}).get("epochs")
        if self.final_epochs and total and epoch + 1 >= total - self.final_epochs:
            self._switch(epoch, len(self.groups))
            return
        if value is None:
            pass
        elif self._improved(float(value)):
            self.best, self.wait = float(value), 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
        if self.wait >= self.patience or (self.max_epochs and self.epochs_in_stage >= self.max_epochs):
            self._switch(epoch, self.stage + 1)

    def _switch(self, epoch: int, stage: int) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
        switched = sum(self.groups[self.stage:stage], [])
        self.stage = stage
        self.switches.append(epoch)
        self._apply()
        if self.verbose:
            print(f"ProgressiveTandem: epoch {epoch + 1}: stage {self.stage} of "
                  f"{len(self.groups)}, {', '.join(switched)} now in tandem mode")
        self._reset()

    def on_train_end(self, logs: Any = None) -> None:
        if self.switches and self.switches[-1] == self.last_epoch:
            warnings.warn(
                f"ProgressiveTandem: stage {self.stage} ({', '.join(self.groups[self.stage - 1])}) was "
                f"switched to tandem mode after the last epoch and never trained in it; give fit more "
                f"epochs, lower max_epochs_per_stage or patience, or set final_epochs so that the last "
                f"stage trains.",
                stacklevel=2)


def set_stage(model: keras.Model, stage: Optional[int] = None, groups: Optional[list] = None) -> keras.Model:
    """Puts the first ``stage`` stages of ``model`` (:func:`stages`) in tandem mode and the
    rest in ann mode, in place (``None``: every stage, the SNN), and rebuilds the functions
    ``fit``, ``evaluate`` and ``predict`` compiled for the old modes. Returns ``model``."""
    groups = stages(model) if groups is None else groups
    stage = len(groups) if stage is None else stage
    for k, group in enumerate(groups, start=1):
        for name in group:
            _layer(model, name).mode = "tandem" if k <= stage else "ann"
    if model.compiled:   # fit's loop calls the train function it holds: made anew here
        for make in ("make_train_function", "make_test_function", "make_predict_function"):
            getattr(model, make)(force=True)
    else:                # predict makes its function again when it finds none
        model.predict_function = None
    return model


def _layer(model: keras.Model, name: str):
    """The layer ``name`` of ``model``, also inside a nested model."""
    return next(layer for layer in all_layers(model) if layer.name == name)


def stage_of(model: keras.Model) -> int:
    """The number of leading stages of ``model`` in tandem mode (all: ``len(stages(model))``)."""
    k = 0
    for group in stages(model):
        if all(_layer(model, n).mode == "tandem" for n in group):
            k += 1
        else:
            break
    return k


__all__ = ["ProgressiveTandem", "set_stage", "stage_of", "stages"]
