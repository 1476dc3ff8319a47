"""Opening an exported SavedModel for evaluation: its metadata, its completeness, its endpoints.

:class:`LoadedModel` opens a directory written by :func:`tandem_keras.export_model` (or any
SavedModel with one output) and refuses, in one ``ValueError`` line, what evaluation must
not run on: an incomplete export (a file of its recorded manifest missing or truncated, the
tandem_keras endpoints without the metadata written last, no ``variables/``), a damaged
metadata file, a serving function with several outputs.

Example:
    >>> lm = LoadedModel(path)                                   # doctest: +SKIP
    >>> lm.input_shape, lm.has_activity, lm.kind["mode"]         # doctest: +SKIP
    ((32, 32, 3), True, 'tandem')
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any, Iterator, Optional

import numpy as np
import tensorflow as tf

from tandem_keras import synops
from tandem_keras._atomic import manifest_problem


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


#: Name of the metadata file inside the SavedModel's ``assets/`` directory.
METADATA_FILE = "tandem_keras.json"
#: Endpoint names.
SERVE, SERVE_ACTIVITY, SERVE_SPIKES = "serve", "serve_activity", "serve_spikes"


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
    try:
        with open(path) as f:
            metadata = json.load(f)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}): the export is damaged or "
                         "incomplete; export it again") from None
    if not isinstance(metadata, dict) or metadata.get("format") not in synops.METADATA_FORMATS:
        raise ValueError(f"{path}: unknown metadata format "
                         f"{metadata.get('format') if isinstance(metadata, dict) else metadata!r}")
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
        problem = incompleteness(export_dir, self.metadata)
        if problem:
            raise ValueError(f"{export_dir!r} is an incomplete export ({problem}): it was "
                             "interrupted or damaged; export it again")
        try:
            with _quiet_tensorflow_logger(True):  # "Fingerprint not found", ...
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
        outputs = _output_names(serve)
        if len(outputs) != 1:
            raise ValueError(f"SavedModel {export_dir!r} returns {len(outputs)} outputs "
                             f"({', '.join(outputs)}); a model with one output, the logits "
                             "[batch, classes], is needed")
        self._serve = serve
        self._activity = getattr(self._loaded, SERVE_ACTIVITY, None)
        if self._activity is not None and self.metadata is None:
            raise ValueError(f"{export_dir!r} is an incomplete export (it has the "
                             f"'{SERVE_ACTIVITY}' endpoint but no assets/{METADATA_FILE}, which "
                             "export_model writes last): it was interrupted; export it again")
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

    @property
    def kind(self) -> dict:
        """``mode``, ``trained_mode``, ``decoding``, ``neuron`` as recorded (None: the export
        does not record it)."""
        meta = self.metadata or {}
        return {key: meta.get(key) for key in ("mode", "trained_mode", "decoding", "neuron")}

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


def incompleteness(export_dir: str, metadata: Optional[dict]) -> Optional[str]:
    """What is missing from an export (None: nothing): a file of the recorded manifest
    (``metadata["files"]``) missing or of another size, or, for exports without one,
    the ``variables/`` of the SavedModel."""
    if metadata is not None and isinstance(metadata.get("files"), dict):
        return manifest_problem(export_dir, metadata["files"])
    if not os.path.isfile(os.path.join(export_dir, "variables", "variables.index")):
        return "variables/variables.index is missing"
    return None


def _output_names(function: Any) -> list[str]:
    """Names of the outputs of a restored endpoint or signature (positions if unnamed)."""
    concrete = getattr(function, "concrete_functions", None)
    outputs = concrete[0].structured_outputs if concrete else getattr(function, "structured_outputs", None)
    if isinstance(outputs, dict):
        return sorted(outputs)
    if isinstance(outputs, (list, tuple)):
        return [f"output {i}" for i in range(len(tf.nest.flatten(outputs)))]
    return ["logits"]
