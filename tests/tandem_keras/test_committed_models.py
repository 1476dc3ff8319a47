"""The committed models (bench/models/*/model.keras) compute what they computed when their
reference was recorded: the same logits, the same spike counts of every spiking layer and
the same SynOps description, on a fixed batch.

Reference: ``data/committed_models.npz``, recorded by this module (``python -m
tests.tandem_keras.test_committed_models --write``) from the library as the models were
trained with; refactoring the layers must not move these numbers. Spike counts are
integers and compared exactly (a SHA-256 of each layer's counts, and their totals per
image for a readable failure); logits to float32 rounding. The SynOps description (rows,
MACs, the exact fan-out of every neuron) must equal the one each export recorded in its
``assets/tandem_keras.json`` when it was written.
"""
import hashlib
import json
import os
import sys

import keras
import numpy as np
import pytest

import tandem_keras as tk

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "bench", "models")
REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "committed_models.npz")
NAMES = ["medium_tandem_T4", "medium_quantized_T4", "vgg11_w2_fp32_ann",
         "vgg11_w2_T4_converted", "cifarnet_w4_T4_finetuned", "resnet20_T4_finetuned",
         "resnet20_T4_negative_spikes"]


def _images() -> np.ndarray:
    return np.random.default_rng(30).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)


def _load(name):
    path = os.path.join(MODELS, name, "model.keras")
    if not os.path.exists(path):
        pytest.skip(f"{path} is not in this checkout")
    return keras.models.load_model(path)


def _digest(counts: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.rint(counts).astype(np.int32)).tobytes()).hexdigest()


def computed(name: str, model=None) -> dict:
    """``{key: array}``: logits, and per spiking layer the counts' digest and per-image totals,
    of the model as loaded and (quantized, ann: trained as such) as the tandem SNN."""
    model = _load(name) if model is None else model
    x = _images()
    out = {"logits": np.asarray(model.predict(x, verbose=0), np.float32)}
    variants = {"": model}
    if {getattr(layer, "mode", "tandem") for layer in model.layers} != {"tandem"}:
        variants["snn_"] = tk.with_mode(model, "tandem")
        out["snn_logits"] = np.asarray(variants["snn_"].predict(x, verbose=0), np.float32)
    for prefix, m in variants.items():
        if prefix == "" and "snn_" in variants:
            continue   # an ANN's activations are not spike counts
        counts = tk.synops.activity_model(m)(x, training=False)
        for key, value in counts.items():
            if key == "logits":
                continue
            value = np.asarray(value, np.float64)
            out[f"{prefix}counts_total/{key}"] = value.reshape(len(x), -1).sum(axis=1)
            out[f"{prefix}counts_sha256/{key}"] = np.array(_digest(value))
    return out


def _reference() -> dict:
    if not os.path.exists(REFERENCE):
        pytest.skip(f"{REFERENCE} is missing")
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("name", NAMES)
def test_committed_model_computes_its_recorded_logits_and_spike_counts(name):
    reference = {k.split(":", 1)[1]: v for k, v in _reference().items() if k.startswith(name + ":")}
    assert reference, f"no reference for {name}"
    got = computed(name)
    assert sorted(got) == sorted(reference)
    for key, expected in reference.items():
        if key.endswith("logits"):
            np.testing.assert_allclose(got[key], expected, rtol=1e-6, atol=1e-6, err_msg=key)
            assert (got[key].argmax(-1) == expected.argmax(-1)).all(), key
        elif "counts_total" in key:
            np.testing.assert_array_equal(got[key], expected, err_msg=key)
        else:
            assert str(got[key]) == str(expected), key


@pytest.mark.parametrize("name", NAMES)
def test_committed_model_has_the_synops_description_its_export_recorded(name):
    model = _load(name)
    with open(os.path.join(MODELS, name, "assets", "tandem_keras.json")) as f:
        recorded = json.load(f)
    description = tk.describe_model(model)
    for key in ("time_steps", "spiking_depth", "inference_time_steps", "input_shape", "num_classes"):
        assert description[key] == recorded[key], key
    # The exports are of format 1 or 2 (fan-out specs or chains): the same SynOps either way.
    assert len(description["layers"]) == len(recorded["layers"])
    for row, old in zip(description["layers"], recorded["layers"]):
        for key in ("name", "class", "shape", "neurons", "spiking", "kind", "macs"):
            assert row[key] == old[key], (row["name"], key)
        np.testing.assert_array_equal(tk.synops.row_fanout(row), tk.synops.row_fanout(old))
    assert tk.export.model_kind(model) == {k: recorded[k] for k in ("mode", "decoding", "neuron")}


def write_reference() -> None:
    """Records the reference from the library as it is now (run deliberately, never to make
    the test pass after a change of the numbers)."""
    arrays = {}
    for name in NAMES:
        for key, value in computed(name).items():
            arrays[f"{name}:{key}"] = value
    os.makedirs(os.path.dirname(REFERENCE), exist_ok=True)
    np.savez_compressed(REFERENCE, **arrays)


if __name__ == "__main__" and "--write" in sys.argv:
    write_reference()
