"""Two models as users build them, through every tool: a tandem Conv1D network on sequences
(causal and strided convolutions) and Inception-style branches joined by ``Concatenate``
(spike trains and a pooled current). Each is trained with ``fit``, and its ``predict`` in
graph mode is checked layer by layer, spike for spike, against float64 NumPy references;
SynOps against a count by hand; the SavedModel export reloaded without the library; the
NIR export run by the NumPy interpreter (tests/_nir_numpy.py); and ``tk.convert`` of the
matching Keras ANN.
"""
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tandem_keras as tk
from tests.tandem_keras.test_linear_layers import conv1d_np
from tests.tandem_keras.test_neurons_reference import (assert_spikes_match, avg_pool_np, conv2d_np,
                                                       neuron_np)

L = keras.layers


def _fit(model, x, y):
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    rng = np.random.default_rng(3)
    for layer in model.layers:   # BN offsets up: random weights spike at a useful rate
        if isinstance(layer, tk.TandemLayer) and layer.batch_norm:
            layer.beta.assign(layer.beta + rng.uniform(0.3, 0.7, layer.beta.shape).astype("float32"))


def _trains(model, x, names):
    """Every named layer's output in inference (one graph-mode predict)."""
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    outputs = probe.predict(x, batch_size=32, verbose=0)
    return dict(zip(names, (np.asarray(a) for a in (outputs if len(names) > 1 else [outputs]))))


def _reference(layer, s_in, linear):
    """float64 spikes of a tandem layer on the input train s_in: z(t) = L'(s_in(t)) + b'/T."""
    kernel, bias = layer.folded_weights()
    n, t = s_in.shape[:2]
    z = linear(s_in.reshape((n * t,) + s_in.shape[2:]), np.asarray(kernel, np.float64))
    z = z + np.asarray(bias, np.float64) / t
    return neuron_np(z.reshape((n, t) + z.shape[1:]), layer.threshold)


def _loads_without_the_library(path, x, expected):
    """The exported SavedModel gives the logits in a process where tandem_keras cannot be imported."""
    code = ("import sys, numpy as np; sys.modules['tandem_keras'] = None\n"
            "import tensorflow as tf\n"
            f"m = tf.saved_model.load({str(path)!r})\n"
            f"x = np.load({str(path) + '_x.npy'!r})\n"
            f"np.save({str(path) + '_y.npy'!r}, m.serve(x).numpy())\n")
    np.save(str(path) + "_x.npy", x)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=os.path.dirname(path),
                   capture_output=True, timeout=300)
    np.testing.assert_allclose(np.load(str(path) + "_y.npy"), expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- sequences
def sequence_model(time_steps=4):
    inp = keras.Input((16, 3), name="sequences")           # 16 steps of 3 channels
    x = L.Conv1D(8, 3, padding="same", use_bias=False, name="encoder_conv")(inp)
    x = L.BatchNormalization(name="encoder_bn")(x)
    s = tk.SpikeEncoder(time_steps, name="encoder")(x)
    h = tk.TandemConv1D(8, 3, padding="causal", name="causal")(s)
    h = tk.TandemConv1D(6, 3, strides=2, name="strided")(h)
    h = tk.TimeFlatten(name="flatten")(h)
    h = tk.TandemDense(10, name="hidden")(h)
    return keras.Model(inp, L.Dense(3, name="logits")(tk.SpikeCount(name="count")(h)))


@pytest.mark.slow
def test_conv1d_network_on_sequences_through_every_tool(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.5, (96, 16, 3)).astype("float32")
    y = (x[:, :8, 0].mean(axis=1) > 1.0).astype("int32") + (x[:, 8:, 1].mean(axis=1) > 1.0)
    model = sequence_model()
    _fit(model, x, y)

    # predict, spike for spike
    names = ["encoder", "causal", "strided", "hidden"]
    trains = _trains(model, x[:32], names)
    expected, margin = _reference(model.get_layer("causal"), trains["encoder"],
                                  lambda s, k: conv1d_np(s, k, 1, "causal"))
    assert_spikes_match(trains["causal"], expected, margin)
    expected, margin = _reference(model.get_layer("strided"), trains["causal"],
                                  lambda s, k: conv1d_np(s, k, 2, "same"))
    assert_spikes_match(trains["strided"], expected, margin)
    assert 0.05 < trains["strided"].mean() < 0.95

    # SynOps (Eq. 13) by hand: a causal window's input i reaches outputs i..i+2 (those < 16)
    causal_cover = np.array([len({o for o in (i, i + 1, i + 2) if o < 16}) for i in range(16)])
    stride_cover = np.array([len({o for o in range(8) if 2 * o <= i <= 2 * o + 2}) for i in range(16)])
    counts = {n: trains[n].sum(axis=1) for n in names}
    by_hand = ((counts["encoder"] * (causal_cover[:, None] * 8)).sum()
               + (counts["causal"] * (stride_cover[:, None] * 6)).sum()
               + counts["strided"].sum() * 10 + counts["hidden"].sum() * 3) / 32
    report = tk.count_synops(model, x[:32])
    assert report["synops_snn"] == pytest.approx(by_hand, rel=1e-9)
    assert report["synops_ann"] == 16 * 9 * 8 + 16 * 24 * 8 + 8 * 24 * 6 + 48 * 10 + 10 * 3   # MACs: k C_in per output

    # the export reloads without the library; its activity endpoint holds the same counts
    logits = model.predict(x[:8], verbose=0)
    metadata = tk.export_model(model, str(tmp_path / "export"))
    assert [r["class"] for r in metadata["layers"]][:3] == ["SpikeEncoder", "TandemConv1D", "TandemConv1D"]
    _loads_without_the_library(tmp_path / "export", x[:8], logits)

    # NIR: Conv1d nodes, run by the NumPy interpreter
    nir = pytest.importorskip("nir")
    from tests.tandem_keras.test_nir import _check_exact

    graph = tk.export_nir(model)
    assert isinstance(graph.nodes["causal"], nir.Conv1d) and int(graph.nodes["causal"].padding) == 2
    _check_exact(model, x[:48], tmp_path, "membrane")


def test_keras_conv1d_ann_converts_to_tandem_conv1d():
    ann = keras.Sequential([keras.Input((12, 2)), L.Conv1D(6, 3, padding="causal", activation="relu"),
                            L.Conv1D(5, 3, strides=2, padding="same"), L.BatchNormalization(), L.ReLU(),
                            L.Flatten(), L.Dense(4)])
    x = np.random.default_rng(1).normal(1, 1, (16, 12, 2)).astype("float32")
    snn = tk.convert(ann, time_steps=4, calibration_data=x)
    assert [type(layer).__name__ for layer in snn.layers[1:4]] == ["Conv1D", "SpikeEncoder", "TandemConv1D"]
    converted = snn.layers[3]
    assert (converted.padding, converted.strides, converted.batch_norm) == ("same", (2,), True)
    np.testing.assert_allclose(tk.with_mode(snn, "ann")(x), ann(x), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- branches
def branch_model(time_steps=4):
    """An Inception-style block: 1x1 and 3x3 tandem convolutions and a 3x3 average-pooled
    current, joined on the channel axis, then a tandem convolution and the readout."""
    inp = keras.Input((8, 8, 2))
    x = L.BatchNormalization(name="encoder_bn")(L.Conv2D(4, 3, padding="same", name="encoder_conv")(inp))
    s = tk.SpikeEncoder(time_steps, name="encoder")(x)
    a = tk.TandemConv2D(3, 1, name="branch_1x1")(s)
    b = tk.TandemConv2D(5, 3, name="branch_3x3")(s)
    c = tk.AveragePooling2D(3, strides=1, padding="same", name="branch_pool")(s)
    joined = L.Concatenate(name="joined")([a, b, c])
    h = tk.TandemConv2D(6, 3, strides=2, name="after")(joined)
    h = tk.TandemDense(10, name="hidden")(tk.TimeFlatten()(h))
    return keras.Model(inp, L.Dense(3, name="logits")(tk.SpikeCount()(h)))


@pytest.mark.slow
def test_concatenated_branches_through_every_tool(tmp_path):
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 3, (96, 8, 8, 2)).astype("float32")
    y = (x[..., 0].mean(axis=(1, 2)) > 1.5).astype("int32")
    model = branch_model()
    _fit(model, x, y)                          # trains, and predicts in graph mode: accepted
    after = model.get_layer("after")           # its input is mostly a thin current: livelier
    after.beta.assign(after.beta + 0.8)

    names = ["encoder", "branch_1x1", "branch_3x3", "branch_pool", "joined", "after"]
    trains = _trains(model, x[:32], names)
    s = trains["encoder"]
    for name, linear in (("branch_1x1", lambda v, k: conv2d_np(v, k, 1, "same")),
                         ("branch_3x3", lambda v, k: conv2d_np(v, k, 1, "same"))):
        expected, margin = _reference(model.get_layer(name), s, linear)
        assert_spikes_match(trains[name], expected, margin)
    pooled = avg_pool_np(s, (3, 3), (1, 1), "same")
    np.testing.assert_allclose(trains["branch_pool"], pooled, rtol=1e-6, atol=1e-7)
    # the concatenation: the branches' trains side by side on the channel axis, integrated
    # exactly by the next layer (its input is spikes and a current)
    joined = np.concatenate([trains["branch_1x1"], trains["branch_3x3"], pooled], axis=-1)
    np.testing.assert_allclose(trains["joined"], joined, rtol=1e-6, atol=1e-7)
    expected, margin = _reference(model.get_layer("after"), joined, lambda v, k: conv2d_np(v, k, 2, "same"))
    assert_spikes_match(trains["after"], expected, margin)
    assert 0.05 < trains["after"].mean() < 0.95

    # SynOps by hand: input position i of a 3x3 'same' window over 8 reaches outputs
    # i-1..i+1; of the stride-2 one, outputs o < 4 with 2o <= i <= 2o + 2 (TF pads after).
    # The encoder's spikes reach branch_1x1 (3 filters), branch_3x3 (5) and, through the
    # pooling (cells i-1..i+1), 'after' (6 filters) on its channels of the joined 12.
    same3 = np.array([len({o for o in (i - 1, i, i + 1) if 0 <= o < 8}) for i in range(8)])
    stride2 = np.array([len({o for o in range(4) if 2 * o <= i <= 2 * o + 2}) for i in range(8)])
    pooled_reach = np.array([len({o for o in range(4) for j in (i - 1, i, i + 1)
                                  if 0 <= j < 8 and 2 * o <= j <= 2 * o + 2}) for i in range(8)])
    counts = {n: trains[n].sum(axis=1) for n in ("encoder", "branch_1x1", "branch_3x3", "after")}
    enc = counts["encoder"]
    hidden = _trains(model, x[:32], ["hidden"])["hidden"].sum()    # reaching the 3 logits
    by_hand = (enc.sum() * 3 + (enc * (np.outer(same3, same3)[..., None] * 5)).sum()
               + (enc * (np.outer(pooled_reach, pooled_reach)[..., None] * 6)).sum()
               + (counts["branch_1x1"] * (np.outer(stride2, stride2)[..., None] * 6)).sum()
               + (counts["branch_3x3"] * (np.outer(stride2, stride2)[..., None] * 6)).sum()
               + counts["after"].sum() * 10 + hidden * 3) / 32
    report = tk.count_synops(model, x[:32])
    assert report["synops_snn"] == pytest.approx(by_hand, rel=1e-9)

    logits = model.predict(x[:8], verbose=0)
    tk.export_model(model, str(tmp_path / "export"))
    _loads_without_the_library(tmp_path / "export", x[:8], logits)

    pytest.importorskip("nir")
    from tests.tandem_keras.test_nir import _check_exact

    graph = tk.export_nir(model)   # one edge per branch into 'after', its weights split by channel
    into_after = sorted(a for a, b in graph.edges if b == "after_if")
    assert into_after == ["after_in0", "after_in1", "after_in2"]
    assert [graph.nodes[f"after_in{i}"].weight.shape[1] for i in range(3)] == [3, 5, 4]
    _check_exact(model, x[:48], tmp_path, "membrane")


def test_keras_ann_with_concatenate_converts():
    inp = keras.Input((8, 8, 2))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    a = L.Conv2D(3, 1, activation="relu")(x)
    b = L.Conv2D(5, 3, padding="same", activation="relu")(x)
    h = L.Conv2D(4, 3, strides=2, padding="same", activation="relu")(L.Concatenate()([a, b]))
    ann = keras.Model(inp, L.Dense(3)(L.Flatten()(h)))
    x = np.random.default_rng(4).uniform(0, 1, (16, 8, 8, 2)).astype("float32")
    snn, report = tk.convert(ann, time_steps=4, calibration_data=x, return_report=True)
    assert any(r.kind == "Concatenate of spikes" for r in report.rows)
    # the two branches have their own thresholds: the reader takes one scale per channel
    np.testing.assert_allclose(tk.with_mode(snn, "ann")(x), ann(x), rtol=1e-4, atol=1e-4)
    assert snn.predict(x, verbose=0).shape == (16, 3)
