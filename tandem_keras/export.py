"""Export a tandem model as a self-contained SavedModel for serving and evaluation.

:func:`export_model` writes, with Keras' ``ExportArchive``:

* ``serve(images) -> logits`` -- also the default serving signature (``serving_default``);
* ``serve_activity(images) -> {"logits": ..., <layer name>: spike counts [batch, ...]}``
  for every spiking layer (``SpikeEncoder``, ``TandemConv2D``, ``TandemDense``),
  ``c = sum_t s(t)``;
* ``serve_spikes(images) -> {"logits": ..., <layer name>: spike trains [batch, T, ...]}``
  (for raster plots; large, use on a few examples);
* ``assets/tandem_keras.json``: :func:`tandem_keras.describe_model` (time steps,
  spiking depth, inference time steps, per-layer neuron shapes, fan-out chains and ANN MACs,
  input shape, number of classes), so that SynOps can be counted from the SavedModel
  directory alone (``python -m eval``), plus ``training`` when given (e.g. the dataset
  split the model was trained on, see ``python -m train``).

A model with a NaN or infinite weight is refused (``ValueError`` naming the weight):
nothing non-finite is exported.

Example:
    >>> import keras, numpy as np, tandem_keras as tk, tempfile, tensorflow as tf
    >>> m = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2, name="enc"),
    ...                       tk.SpikeCount(), keras.layers.Dense(3)])
    >>> path = tempfile.mkdtemp()
    >>> _ = export_model(m, path)
    >>> loaded = tf.saved_model.load(path)
    >>> out = loaded.serve_activity(np.ones((1, 4), "float32"))
    >>> sorted(out), load_metadata(path)["time_steps"]
    (['enc', 'logits'], 2)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any, Iterator, Optional

import keras
import numpy as np
import tensorflow as tf

from tandem_keras import synops

#: Name of the metadata file inside the SavedModel's ``assets/`` directory.
METADATA_FILE = "tandem_keras.json"
#: Endpoint names.
SERVE, SERVE_ACTIVITY, SERVE_SPIKES = "serve", "serve_activity", "serve_spikes"


def non_finite_weights(model: keras.Model) -> list[str]:
    """Paths of ``model``'s variables that hold a NaN or an infinity (empty: all finite)."""
    return [v.path for v in model.weights
            if not np.all(np.isfinite(keras.ops.convert_to_numpy(v)))]


def _tf_variable(variable: Any) -> tf.Variable:
    """The tf.Variable behind a ``keras.Variable`` (TensorFlow backend; outside any autocast
    scope ``value`` is the variable itself, not a cast copy)."""
    value = variable.value if isinstance(variable, keras.Variable) else variable
    if not isinstance(value, tf.Variable):
        raise TypeError(f"export_model: {variable.path} is not backed by a tf.Variable")
    return value


def export_model(model: keras.Model, export_dir: str, mode: Optional[str] = None,
                 spike_trains: bool = True, verbose: bool = False,
                 training: Optional[dict] = None) -> dict:
    """Writes ``model`` as a SavedModel with ``serve``/``serve_activity``/``serve_spikes``.

    Args:
      model: a functional or Sequential tandem model with one image input.
      export_dir: output directory (created; an existing SavedModel is overwritten).
      mode: if given, export ``tk.with_mode(model, mode)`` (e.g. ``"tandem"`` to run a
        model trained in ``"quantized"`` mode as the SNN, constrain-then-train).
      spike_trains: also add the ``serve_spikes`` endpoint.
      verbose: let Keras print the exported endpoints and TensorFlow its INFO lines.
      training: JSON-serializable facts about training stored under ``"training"`` in
        the metadata (``python -m train`` stores the dataset split).

    Returns:
      The metadata written to ``assets/tandem_keras.json``.

    Raises:
      ValueError: ``model`` is not a one-input, one-output Keras model, or a weight is
        NaN or infinite (named in the message; nothing is written).

    All endpoints run in inference mode (moving BN statistics, no dropout).
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"export_model expects a keras.Model, got {type(model).__name__}")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"export_model expects one input and one output, model {model.name!r} "
                         f"has {len(model.inputs)} and {len(model.outputs)}")
    bad = non_finite_weights(model)
    if bad:
        raise ValueError(f"export_model: model {model.name!r} has non-finite weights "
                         f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); not exported")
    if mode is not None:
        from tandem_keras.modes import with_mode

        model = with_mode(model, mode)
    metadata = synops.describe_model(model)
    if training is not None:
        metadata["training"] = dict(training)
    counts_model = synops.activity_model(model)
    spikes = synops.activity_model(model, spike_trains=True) if spike_trains else None
    spec = tf.TensorSpec([None, *metadata["input_shape"]], model.inputs[0].dtype or "float32",
                         name="images")

    archive = keras.export.ExportArchive()
    # Not ``archive.track(model)``: Keras (3.15 and earlier) would then store every weight
    # twice, once through its ``keras.Variable`` wrapper and once through the tf.Variable
    # the endpoints capture (keras-team/keras#23553): twice the files and, once loaded,
    # twice the memory. The endpoints track the tf.Variables they use; the collection
    # below names all of them (the same objects) as the SavedModel's ``variables``.
    archive.add_endpoint(SERVE, lambda images: model(images, training=False), [spec])
    archive.add_endpoint(SERVE_ACTIVITY, lambda images: counts_model(images, training=False), [spec])
    if spikes is not None:
        archive.add_endpoint(SERVE_SPIKES, lambda images: spikes(images, training=False), [spec])
    archive.add_variable_collection("variables", [_tf_variable(v) for v in model.variables])
    with _quiet_tensorflow_logger(not verbose):
        archive.write_out(export_dir, verbose=verbose)

    assets = os.path.join(export_dir, "assets")
    os.makedirs(assets, exist_ok=True)
    with open(os.path.join(assets, METADATA_FILE), "w") as f:
        json.dump(metadata, f, indent=1)
    return metadata


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


@contextlib.contextmanager
def _quiet_tensorflow_logger(quiet: bool) -> Iterator[None]:
    """Hides TensorFlow's INFO lines while saving (renamed inputs, sharding, fingerprint).

    TensorFlow logs them through absl's logger and its own. A filter, not a level: saving
    resets absl's verbosity (it assigns absl's flags).
    """
    if not quiet:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("tensorflow", "absl")]
    below = _BelowWarning()
    for logger in loggers:
        logger.addFilter(below)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(below)


def is_saved_model(path: str) -> bool:
    """True if ``path`` is a directory holding ``saved_model.pb``."""
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def load_metadata(export_dir: str) -> Optional[dict]:
    """The ``assets/tandem_keras.json`` metadata of an export, or None if absent.

    Raises ValueError if ``export_dir`` is not a SavedModel directory.
    """
    if not is_saved_model(export_dir):
        raise ValueError(f"{export_dir!r} is not a SavedModel directory (no saved_model.pb)")
    path = os.path.join(export_dir, "assets", METADATA_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        metadata = json.load(f)
    if metadata.get("format") not in synops.METADATA_FORMATS:
        raise ValueError(f"{path}: unknown metadata format {metadata.get('format')!r}")
    return metadata


class LoadedModel:
    """A SavedModel opened for evaluation: logits, and spike counts if exported.

    ``logits(images)``: the ``serve`` endpoint (or the ``serving_default`` signature of
    any SavedModel with a single output). ``activity(images)``: ``serve_activity``, and
    ``spikes(images)``: ``serve_spikes``; ``has_activity`` / ``has_spikes`` say whether
    they exist (a plain ``model.export()`` has neither, nor the metadata).

    Example:
        >>> lm = LoadedModel(path)                                   # doctest: +SKIP
        >>> lm.input_shape, lm.has_activity                          # doctest: +SKIP
        ((32, 32, 3), True)
    """

    def __init__(self, export_dir: str) -> None:
        self.metadata = load_metadata(export_dir)  # raises if not a SavedModel
        try:
            self._loaded = tf.saved_model.load(export_dir)
        except Exception as error:  # noqa: BLE001 - TF raises many kinds here
            raise ValueError(f"cannot load the SavedModel {export_dir!r}: "
                             f"{str(error).splitlines()[0]}") from None
        self.export_dir = export_dir
        serve = getattr(self._loaded, SERVE, None)
        signatures = getattr(self._loaded, "signatures", {})
        if serve is None and "serving_default" in signatures:
            serve = signatures["serving_default"]
        if serve is None:
            raise ValueError(f"SavedModel {export_dir!r} has neither a 'serve' endpoint nor a "
                             "'serving_default' signature")
        self._serve = serve
        self._activity = getattr(self._loaded, SERVE_ACTIVITY, None)
        self._spikes = getattr(self._loaded, SERVE_SPIKES, None)
        self.input_shape = self._input_shape()

    def non_finite_variables(self) -> list[str]:
        """Names of the SavedModel's variables that hold a NaN or an infinity (empty: none)."""
        return [v.name for v in getattr(self._loaded, "variables", ())
                if v.dtype.is_floating and not np.all(np.isfinite(v.numpy()))]

    @property
    def training(self) -> Optional[dict]:
        """What the export recorded about training (``"training"`` metadata), or None."""
        return (self.metadata or {}).get("training")

    @property
    def has_activity(self) -> bool:
        """True when spike counts and the metadata needed for SynOps are available."""
        return self._activity is not None and self.metadata is not None

    @property
    def has_spikes(self) -> bool:
        return self._spikes is not None

    def _input_shape(self) -> Optional[tuple]:
        if self.metadata is not None:
            return tuple(self.metadata["input_shape"])
        fn = self._serve
        specs = getattr(fn, "input_signature", None)
        if not specs and hasattr(fn, "structured_input_signature"):
            args, kwargs = fn.structured_input_signature
            specs = list(args) + list(kwargs.values())
        if specs and hasattr(specs[0], "shape") and specs[0].shape.rank:
            return tuple(specs[0].shape[1:])
        return None

    @staticmethod
    def _single(outputs: Any) -> tf.Tensor:
        if isinstance(outputs, dict):
            if len(outputs) != 1:
                raise ValueError(f"the serving signature has several outputs {sorted(outputs)}; "
                                 "expected the logits only")
            outputs = next(iter(outputs.values()))
        return outputs

    def logits(self, images: Any) -> tf.Tensor:
        """Logits ``[batch, classes]`` from the ``serve`` endpoint."""
        return self._single(self._serve(tf.convert_to_tensor(images, tf.float32)))

    def activity(self, images: Any) -> dict:
        """``{"logits", <layer>: counts}`` from ``serve_activity``."""
        if self._activity is None:
            raise ValueError(f"SavedModel {self.export_dir!r} has no '{SERVE_ACTIVITY}' endpoint")
        return dict(self._activity(tf.convert_to_tensor(images, tf.float32)))

    def spikes(self, images: Any) -> dict:
        """``{"logits", <layer>: spike trains [batch, T, ...]}`` from ``serve_spikes``."""
        if self._spikes is None:
            raise ValueError(f"SavedModel {self.export_dir!r} has no '{SERVE_SPIKES}' endpoint")
        return dict(self._spikes(tf.convert_to_tensor(images, tf.float32)))
