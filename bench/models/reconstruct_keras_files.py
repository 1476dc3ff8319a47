"""Reconstructs the ``model.keras`` of the committed SavedModels, which were copied without it.

    python bench/models/reconstruct_keras_files.py --train_dir=/tmp/cifar/cifar10_jpeg/train

The exports under ``bench/models/`` were committed as SavedModels only (the runs' own
``model.keras`` held the optimizer state and is gone), so ``tandem-export-nir`` and the
Fig. 7C / Fig. 9 analyses of ``python -m eval`` could not run on them. For each one this
script, without retraining anything:

1. builds the model from its recorded configuration (``bench/results/records.jsonl``: the
   ``trained_model`` record of ``cifarnet_w4_T4``, the ``medium`` ``reproduce_cifar10``
   record of ``medium_tandem_T4`` / ``medium_quantized_T4``) with ``train.recipe``, under
   the recorded dtype policy, and checks its name against the export's metadata;
2. assigns every variable of the SavedModel to the Keras weight of the same path (the sets
   of paths and shapes must be equal);
3. checks that its logits equal the SavedModel's ``serve`` logits on the first
   ``--check_examples`` validation images of ``--train_dir`` (refuses above ``--tolerance``,
   or on any differing prediction);
4. saves it, uncompiled (no optimizer state), as ``model.keras`` into the export, and
   rewrites the export's metadata as current exports have it: the training folder by name
   and fingerprint (``train.folders``, of ``--train_dir``, whose file count must equal the
   recorded split sizes) instead of the training machine's path, the model's mode,
   decoding and neuron, and the manifest of the export's files. The SavedModel's own files
   are not touched.

Run it again and nothing changes but the manifest (the same weights are saved again).
"""
from __future__ import annotations

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tandem_keras  # noqa: E402,F401  (registers the layers)
from tandem_keras import _atomic, export  # noqa: E402
from train import data, recipe  # noqa: E402
from train.config import TrainConfig  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("train_dir", "/tmp/cifar/cifar10_jpeg/train",
                    "The CIFAR-10 JPEG training folder the models were trained on.")
flags.DEFINE_list("exports", ["cifarnet_w4_T4", "medium_tandem_T4", "medium_quantized_T4"],
                  "Exports under bench/models to reconstruct.")
flags.DEFINE_integer("check_examples", 1000, "Validation images the logits are compared on.")
flags.DEFINE_float("tolerance", 1e-4, "Largest allowed |Keras - SavedModel| logit difference.")

MODELS = os.path.join(ROOT, "bench", "models")
RECORDS = os.path.join(ROOT, "bench", "results", "records.jsonl")


def _records() -> list[dict]:
    with open(RECORDS) as f:
        return [json.loads(line) for line in f if line.strip()]


def recorded_configuration(name: str) -> tuple[TrainConfig, str]:
    """``(train.recipe values, dtype policy)`` of export ``name``, from its record."""
    records = _records()
    if name.startswith("medium_"):
        mode, time_steps = name.split("_")[1], int(name.rsplit("_T", 1)[1])
        [config] = [r["config"] for r in records if r["kind"] == "reproduce_cifar10"
                    and r["config"].get("budget") == "medium"][-1:]
        assert time_steps == config["time_steps"], (name, config["time_steps"])
        width = config["width_divisor"]
        return TrainConfig(model="cifarnet", mode=mode, time_steps=time_steps,
                           decode="membrane", dropout=config["dropout"], width_divisor=width,
                           model_name=f"cifarnet_w{width}_{mode}_T{time_steps}_membrane"), "float32"
    [config] = [r["config"] for r in records if r["kind"] == "trained_model"
                and r["config"].get("name") == name][-1:]
    return TrainConfig(**{k: config[k] for k in (
        "model", "mode", "time_steps", "decode", "dropout", "width_divisor")}), config["mixed_precision"]


def reconstruct(name: str, train_dir: str, check_examples: int, tolerance: float) -> dict:
    path = os.path.join(MODELS, name)
    metadata = export.load_metadata(path)
    values, policy = recorded_configuration(name)
    keras.backend.clear_session()  # layer and seed-generator names as in a fresh process
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = recipe.build_model(values, tuple(metadata["input_shape"]), metadata["num_classes"])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.name == metadata["model_name"], (model.name, metadata["model_name"])
    loaded = tf.saved_model.load(path)
    # The SavedModel holds model.variables under their paths; the dropout layers' random
    # generator states are named by creation order in the training process, so those are
    # matched in order (they take no part in inference).
    seed = "seed_generator_state"
    saved = {v.name.rsplit(":", 1)[0]: v for v in loaded.variables if seed not in v.name}
    weights = {w.path: w for w in model.variables if seed not in w.path}
    assert sorted(saved) == sorted(weights), sorted(set(saved) ^ set(weights))
    pairs = [(weights[k], saved[k]) for k in weights] + list(zip(
        [w for w in model.variables if seed in w.path], [v for v in loaded.variables if seed in v.name]))
    assert len(pairs) == len(model.variables) == len(loaded.variables)
    for weight, value in pairs:
        assert tuple(weight.shape) == tuple(value.shape), weight.path
        weight.assign(value.numpy())

    source = data.load(f"folder:{train_dir}", validation_split=metadata["training"]["validation_split"])
    assert (source.num_train, source.num_validation) == (
        metadata["training"]["num_train"], metadata["training"]["num_validation"])
    images = np.concatenate([x for x, _ in source.split("validation")[0].take(check_examples)
                             .batch(250).as_numpy_iterator()])
    ours = np.concatenate([np.asarray(model(images[i:i + 250], training=False), np.float32)
                           for i in range(0, len(images), 250)])
    theirs = np.concatenate([np.asarray(loaded.serve(tf.constant(images[i:i + 250])), np.float32)
                             for i in range(0, len(images), 250)])
    difference = float(np.max(np.abs(ours - theirs)))
    same_predictions = bool(np.array_equal(ours.argmax(1), theirs.argmax(1)))
    if difference > tolerance or not same_predictions:
        raise SystemExit(f"{name}: the rebuilt model's logits differ from the SavedModel's by up "
                         f"to {difference} (same predictions: {same_predictions}); not saved")

    keras_path = os.path.join(path, "model.keras")
    model.save(keras_path)  # never compiled: no optimizer state
    training = {k: v for k, v in metadata["training"].items() if k != "dataset"}
    training.update(source.identity)
    metadata.update(export.model_kind(model))
    metadata["trained_mode"] = metadata["mode"]
    metadata["training"] = training
    metadata["keras_file"] = "model.keras"
    metadata.pop("files", None)
    meta_path = os.path.join(path, "assets", export.METADATA_FILE)
    metadata["files"] = {k: v for k, v in _atomic.manifest(path).items()
                         if k != f"assets/{export.METADATA_FILE}"}
    with open(meta_path, "w") as f:
        json.dump(metadata, f, indent=1)
    return {"export": name, "examples": len(images), "max_abs_logit_difference": difference,
            "same_predictions": same_predictions, "policy": policy,
            "model_keras_bytes": os.path.getsize(keras_path),
            "fingerprint": source.identity["folder_fingerprint"]}


def main(argv) -> None:
    del argv
    for name in FLAGS.exports:
        print(json.dumps(reconstruct(name, FLAGS.train_dir, FLAGS.check_examples, FLAGS.tolerance)))


if __name__ == "__main__":
    app.run(main)
