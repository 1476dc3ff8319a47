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
  directory alone (``python -m eval``); what the exported model is (:func:`model_kind`:
  ``mode``, ``trained_mode``, ``decoding``, ``neuron``); ``files``, the size of every file
  of the SavedModel, which :class:`LoadedModel` checks; and ``training`` when given (e.g.
  the dataset split the model was trained on, see ``python -m train``).

The export is written beside ``export_dir`` and renamed into place when complete
(``tandem_keras._atomic``): an earlier export there survives a failure, a full disk or a
signal during the export, and no half-written export is left at ``export_dir``.

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
    >>> sorted(out), load_metadata(path)["time_steps"], load_metadata(path)["mode"]
    (['enc', 'logits'], 2, 'tandem')
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf

from tandem_keras import kinds, synops
from tandem_keras._atomic import manifest, written_aside
from tandem_keras._nested import flat
# The export's reader, beside its writer (``tk.export.LoadedModel``, ``load_metadata``, ...).
from tandem_keras.saved_model import (METADATA_FILE, SERVE, SERVE_ACTIVITY,  # noqa: F401
                                      SERVE_SPIKES, LoadedModel, _quiet_tensorflow_logger,
                                      incompleteness, is_saved_model, load_metadata)


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
                 training: Optional[dict] = None, keras_file: Optional[str] = None) -> dict:
    """Writes ``model`` as a SavedModel with ``serve``/``serve_activity``/``serve_spikes``.

    Args:
      model: a functional or Sequential tandem model with one image input.
      export_dir: output directory (created; an earlier export there is replaced once the
        new export is complete; a directory holding anything else is refused).
      mode: if given, export ``tk.with_mode(model, mode)`` (e.g. ``"tandem"`` to run a
        model trained in ``"quantized"`` mode as the SNN, constrain-then-train).
      spike_trains: also add the ``serve_spikes`` endpoint.
      verbose: let Keras print the exported endpoints and TensorFlow its INFO lines.
      training: JSON-serializable facts about training stored under ``"training"`` in
        the metadata (``python -m train`` stores the dataset split).
      keras_file: if given, ``model`` as given (before ``mode``) is also saved as this
        ``.keras`` file inside the export (``python -m train``: ``model.keras``), part of
        the same atomic export.

    Returns:
      The metadata written to ``assets/tandem_keras.json``.

    Raises:
      ValueError: ``model`` is not a one-input, one-output Keras model, or a weight is
        NaN or infinite (named in the message; nothing is written).
      FileExistsError: ``export_dir`` holds files that are not an earlier export's (named
        in the message; nothing is written or deleted).

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
    trained, original = model_kind(model), model
    if mode is not None:
        from tandem_keras.modes import with_mode

        model = with_mode(model, mode)
    model = flat(model)   # a backbone's layers inlined: the same layers and weights
    metadata = synops.describe_model(model)
    metadata.update(model_kind(model))
    metadata["trained_mode"] = trained["mode"]
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
    with written_aside(export_dir, manifest_file=f"assets/{METADATA_FILE}") as new:
        with _quiet_tensorflow_logger(not verbose):
            archive.write_out(new, verbose=verbose)
        if keras_file is not None:
            original.save(os.path.join(new, keras_file))
            metadata["keras_file"] = keras_file
        metadata["files"] = manifest(new)  # every file but the metadata, written last
        assets = os.path.join(new, "assets")
        os.makedirs(assets, exist_ok=True)
        with open(os.path.join(assets, METADATA_FILE), "w") as f:
            json.dump(metadata, f, indent=1)
    return metadata


#: Modes whose exported model is an ANN (real-valued activations, MACs), not an SNN.
ANN_MODES = ("ann", "quantized")


def decoding_of(model: keras.Model) -> Optional[str]:
    """The decoding of ``model``'s output, as its readout layer's kind says
    (:mod:`tandem_keras.kinds`: ``"membrane"`` for a ``Dense`` on the counts,
    ``"spike_count"`` for ``SpikeCount``, ``SpikeCountOutput``'s own), looking back through
    element-wise and shape-only layers after it (a softmax, a rescaling); None if none says."""
    from tandem_keras._keras_internals import producer

    tensor = model.outputs[0]
    for _ in range(64):
        layer, parents = producer(tensor)
        if layer is None:
            return None
        decoding = kinds.field(layer, "decoding")
        if decoding is not None:
            return decoding
        if kinds.role(layer) not in ("elementwise", "transparent") or len(parents) != 1:
            return None
        tensor = parents[0]
    return None


def model_kind(model: keras.Model) -> dict:
    """What a tandem model computes: ``mode`` (of its layers with modes, ``tk.MODES``; a
    list if they differ), ``decoding`` (:func:`decoding_of`: ``"membrane"``,
    ``"spike_count"``, ``"spike_count_tie"``, ``"spike_count_st"``) and ``neuron`` (of its
    layers with neurons, as ``tk.neurons.serialize`` names it).

    Example:
        >>> import keras, tandem_keras as tk
        >>> m = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2, mode="ann"),
        ...                       tk.SpikeCount(), keras.layers.Dense(3)])
        >>> model_kind(m)
        {'mode': 'ann', 'decoding': 'membrane', 'neuron': 'if'}
    """
    from tandem_keras import neurons as neuron_objects

    model = flat(model)
    modes = sorted({layer.mode for layer in model.layers if kinds.has_modes(layer)})
    neurons = []
    for layer in model.layers:
        if kinds.has_neurons(layer) and getattr(layer, "neuron", None) is not None:
            neuron = neuron_objects.serialize(layer.neuron)
            if neuron not in neurons:
                neurons.append(neuron)
    return {"mode": modes[0] if len(modes) == 1 else (modes or None),
            "decoding": decoding_of(model),
            "neuron": neurons[0] if len(neurons) == 1 else (neurons or None)}
