"""Switching a model between tandem, ANN, quantized-ANN and BPTT modes.

All tandem_keras layers take a ``mode`` argument (``tk.MODES``). The paper's
baselines are the same model in another mode:

* plain ReLU ANN: ``mode="ann"``;
* bounded quantized ANN (Eq. 11, straight-through): ``mode="quantized"``;
* constrain-then-train: train in ``"quantized"``, then run the weights as the SNN with
  ``with_mode(model, "tandem")``;
* BPTT: ``mode="bptt"`` (gradients through the IF dynamics, surrogate derivative).
"""

from __future__ import annotations

import keras

from tandem_keras import kinds
from tandem_keras._checks import check_choice
from tandem_keras._keras_internals import all_layers
from tandem_keras._nested import flat, nested_models

#: The modes of every layer that has them (``tk.MODES``).
MODES = ("tandem", "ann", "quantized", "bptt")


class ModeMixin:
    """A ``mode`` attribute checked against :data:`MODES` on every assignment: mixed into
    every library layer that has modes (registered in :mod:`tandem_keras.kinds` with
    ``modes=True``, so that :func:`with_mode` and :func:`set_mode` switch its subclasses too)."""

    @property
    def mode(self) -> str:
        """``"tandem"``, ``"ann"``, ``"quantized"`` or ``"bptt"`` (see :mod:`tandem_keras.modes`)."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._mode = check_choice(value, "mode", MODES, type(self).__name__)


kinds.register_layer(ModeMixin, modes=True, convert="keep")


def with_mode(model: keras.Model, mode: str) -> keras.Model:
    """Returns a copy of ``model`` (Sequential or functional) with every layer that has modes
    (the library's, subclasses of them, a user's registered with ``modes=True``:
    :mod:`tandem_keras.kinds`) in ``mode`` and the same weights (moving BN statistics
    included).

    The copy is uncompiled. A model that uses functional or Sequential models as layers
    (a backbone) is copied as one flat functional model, their layers inlined and switched
    too. Subclassed models cannot be cloned: set ``layer.mode`` on their layers instead
    (and recompile).

    Example:
      >>> quantized = build_model(mode="quantized"); quantized.fit(...)   # doctest: +SKIP
      >>> snn = with_mode(quantized, "tandem")          # constrain-then-train  # doctest: +SKIP
    """
    check_choice(mode, "mode", MODES, "with_mode")
    if not isinstance(model, keras.Model):
        raise ValueError(f"with_mode expects a keras.Model, got {type(model).__name__}.")

    def clone(layer):
        config = layer.get_config()
        if kinds.has_modes(layer):
            config["mode"] = mode
        return layer.__class__.from_config(config)

    if nested_models(model):   # a backbone inlined: one flat model, every layer switched
        return flat(model, copy=clone)
    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    except ValueError as error:
        raise ValueError(
            f"with_mode can only copy Sequential and functional models ({error}); for a subclassed "
            "model set `layer.mode` on its tandem_keras layers and recompile.") from error
    copy.set_weights(model.get_weights())
    return copy


def set_mode(model: keras.Model, mode: str) -> keras.Model:
    """Sets ``mode`` in place on every layer of ``model`` that has modes (any kind of model).

    Works for subclassed models too. Recompile afterwards: a compiled train or
    predict function keeps the graph of the old mode. In ``"ann"`` mode the time axis
    between layers has length 1, so shapes inside a functional model's graph change:
    prefer :func:`with_mode` for functional and Sequential models.
    """
    check_choice(mode, "mode", MODES, "set_mode")
    for layer in all_layers(model):
        if kinds.has_modes(layer):
            layer.mode = mode
    return model
