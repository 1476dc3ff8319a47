"""tk.export_model: SavedModel endpoints and metadata, reloaded without model code."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk
from tandem_keras import export, synops


def tiny_model(decode="membrane", seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((6, 6, 1), name="images")
    x = keras.layers.Conv2D(3, 3, padding="same", use_bias=False, name="encoder_conv")(inp)
    x = keras.layers.BatchNormalization(name="encoder_bn")(x)
    x = tk.SpikeEncoder(3, name="encoder")(x)
    x = tk.TandemConv2D(4, 3, strides=2, name="tandem_conv1")(x)
    x = tk.TimeFlatten(name="flatten")(x)
    if decode == "membrane":
        x = tk.SpikeCount(name="spike_count")(x)
        out = keras.layers.Dense(5, name="logits")(x)
    else:
        out = tk.SpikeCount(name="logits")(tk.TandemDense(5, batch_norm=False, name="out")(x))
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_model()
    path = str(tmp_path_factory.mktemp("export"))
    metadata = export.export_model(model, path)
    return model, path, metadata


def test_endpoints_match_the_keras_model(exported):
    model, path, metadata = exported
    x = np.random.default_rng(1).uniform(0, 3, (4, 6, 6, 1)).astype("float32")
    loaded = tf.saved_model.load(path)
    np.testing.assert_allclose(loaded.serve(x), model(x, training=False), rtol=1e-5, atol=1e-5)
    default = loaded.signatures["serving_default"](images=tf.constant(x))
    np.testing.assert_allclose(next(iter(default.values())), model(x), rtol=1e-5, atol=1e-5)

    activity = loaded.serve_activity(x)
    assert sorted(activity) == ["encoder", "logits", "tandem_conv1"]
    # Independent reference for the counts: sum over time of the layers' own outputs.
    probe = keras.Model(model.inputs[0], [model.get_layer("encoder").output,
                                       model.get_layer("tandem_conv1").output])
    enc, conv = probe(x, training=False)
    np.testing.assert_array_equal(activity["encoder"], np.sum(enc, axis=1))
    np.testing.assert_array_equal(activity["tandem_conv1"], np.sum(conv, axis=1))
    assert activity["tandem_conv1"].shape == (4, 3, 3, 4)

    trains = loaded.serve_spikes(x)
    assert trains["tandem_conv1"].shape == (4, 3, 3, 3, 4)
    np.testing.assert_array_equal(np.sum(trains["tandem_conv1"], axis=1), activity["tandem_conv1"])


def test_every_weight_is_stored_once(exported):
    # Keras's ExportArchive.track() stores each weight twice (keras-team/keras#23553);
    # export_model must not: the checkpoint holds as many values as the model has weights,
    # and the loaded `variables` are those weights, by name and value.
    model, path, _ = exported
    stored = tf.train.list_variables(os.path.join(path, "variables", "variables"))
    values = sum(int(np.prod(shape)) for name, shape in stored if "OBJECT_GRAPH" not in name)
    assert values == sum(int(np.prod(w.shape)) for w in model.weights)
    loaded = {v.name.split(":")[0]: v.numpy() for v in tf.saved_model.load(path).variables}
    assert len(loaded) == len(model.weights)
    for w in model.weights:
        np.testing.assert_array_equal(loaded[w.path], keras.ops.convert_to_numpy(w), err_msg=w.path)


def test_metadata(exported):
    model, path, metadata = exported
    with open(os.path.join(path, "assets", "tandem_keras.json")) as f:
        on_disk = json.load(f)
    assert on_disk == json.loads(json.dumps(metadata)) == export.load_metadata(path)
    assert on_disk["time_steps"] == 3 and on_disk["spiking_depth"] == 2
    assert on_disk["inference_time_steps"] == 5
    assert on_disk["input_shape"] == [6, 6, 1] and on_disk["num_classes"] == 5
    rows = {r["name"]: r for r in on_disk["layers"]}
    # encoder conv: 9*1 fan-in x 6*6*3 neurons; tandem conv 9*3 x 3*3*4; dense 36 x 5.
    assert rows["encoder"]["macs"] == 9 * 36 * 3
    assert rows["tandem_conv1"]["macs"] == 27 * 36
    assert rows["logits"]["macs"] == 36 * 5


def test_loaded_model_and_counts(exported):
    model, path, _ = exported
    lm = export.LoadedModel(path)
    assert lm.has_activity and lm.has_spikes and lm.input_shape == (6, 6, 1)
    x = np.random.default_rng(2).uniform(0, 3, (3, 6, 6, 1)).astype("float32")
    acc = synops.ActivityAccumulator(lm.metadata)
    acc.update({k: v.numpy() for k, v in lm.activity(x).items()})
    direct = synops.count_synops(model, x)
    assert acc.report()["synops_snn"] == pytest.approx(direct["synops_snn"])
    assert acc.report()["synops_ann"] == direct["synops_ann"]


def test_spike_count_decoding_and_mode(tmp_path):
    model = tiny_model("spike_count")
    metadata = export.export_model(model, str(tmp_path), mode="quantized", spike_trains=False)
    lm = export.LoadedModel(str(tmp_path))
    assert not lm.has_spikes and metadata["spiking_depth"] == 3
    x = np.random.default_rng(3).uniform(0, 3, (2, 6, 6, 1)).astype("float32")
    np.testing.assert_allclose(lm.logits(x), tk.with_mode(model, "quantized")(x), atol=1e-5)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="not a SavedModel"):
        export.LoadedModel(str(tmp_path))
    with pytest.raises(ValueError, match="expects a keras.Model"):
        export.export_model(object(), str(tmp_path))
    # A plain Keras export: logits only, no activity endpoint and no metadata.
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    plain.export(str(tmp_path / "plain"), verbose=False)
    lm = export.LoadedModel(str(tmp_path / "plain"))
    assert not lm.has_activity and lm.input_shape == (4,)
    assert lm.logits(np.ones((1, 4), "float32")).shape == (1, 2)
