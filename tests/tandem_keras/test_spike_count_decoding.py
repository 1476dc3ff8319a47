"""Spike-count decoding options and the membrane tie rule (tk.decoding, method §4).

References: a NumPy integrate-and-fire simulation of the output neurons (counts and the
potential left after the window), the analytic cross-entropy gradient through the tandem
coupling, and a lexicographic NumPy sort for the decision rule.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk
from tandem_keras import decoding

T, F, K = 4, 6, 5


def numpy_output_neurons(spikes, kernel, bias, threshold=1.0):
    """IF neurons with reset by subtraction: counts, final potential, V_f (NumPy)."""
    batch, steps, _ = spikes.shape
    v = np.zeros((batch, kernel.shape[1]))
    counts = np.zeros_like(v)
    for t in range(steps):
        v = v + spikes[:, t] @ kernel + bias / steps
        fired = v >= threshold
        counts += fired
        v = v - threshold * fired
    v_f = spikes.sum(1) @ kernel + bias
    return counts, v, v_f


def numpy_rule_prediction(counts, v_end):
    """Most spikes; among equal counts the higher final potential; then the lower index."""
    order = [np.lexsort((np.arange(len(c)), -r, -c)) for c, r in zip(counts, v_end)]
    return np.array([o[0] for o in order])


def make_layer(scale=1.0, **kwargs):
    layer = decoding.SpikeCountOutput(K, scale=scale, **kwargs)
    layer.build((None, T, F))
    rng = np.random.default_rng(1)
    weights = [rng.normal(0.0, 0.6, (F, K)).astype("float32"), rng.normal(0.0, 0.5, K).astype("float32")]
    layer.set_weights(weights + layer.get_weights()[2:])
    return layer, weights


def spike_batch(n=16, seed=0):
    return (np.random.default_rng(seed).random((n, T, F)) < 0.5).astype("float32")


def test_forward_matches_numpy_if_neurons_and_rule():
    layer, (kernel, bias) = make_layer(scale=2.5)
    x = spike_batch(64)
    counts, v_end, _ = numpy_output_neurons(x, kernel.astype(float), bias.astype(float))
    g = 0.5 + 0.49 * v_end / (1.0 + np.abs(v_end))
    logits = layer(x, training=False).numpy()
    np.testing.assert_allclose(logits, 2.5 * (counts + g), atol=1e-4)
    np.testing.assert_array_equal(decoding.counts_from_logits(logits, 2.5).numpy(), counts)
    assert np.array_equal(logits.argmax(1), numpy_rule_prediction(counts, v_end))


def test_tie_rule_on_deliberately_tied_counts():
    # One input spiking at every step: z = w per step. w = 0.6 and 0.7 both fire twice in
    # T=4 (V_end 0.4 and 0.8), w = 0.3 fires once, w = 0.6 again ties class 0 exactly.
    layer = decoding.SpikeCountOutput(4)
    layer.build((None, T, 1))
    layer.set_weights([np.array([[0.6, 0.7, 0.3, 0.6]], "float32"), np.zeros(4, "float32")])
    x = np.ones((1, T, 1), "float32")
    counts, v_end, _ = numpy_output_neurons(x, layer.get_weights()[0].astype(float), np.zeros(4))
    assert counts.tolist() == [[2, 2, 1, 2]]
    np.testing.assert_allclose(v_end, [[0.4, 0.8, 0.2, 0.4]], atol=1e-6)
    logits = layer(x, training=False).numpy()
    assert int(logits.argmax()) == 1 == int(numpy_rule_prediction(counts, v_end)[0])
    # The index rule of the paper's argmax picks class 0; the same tie rule for top-k
    # (tk.metrics) ranks the exact tie (classes 0 and 3) by index.
    assert int(np.argmax(counts)) == 0
    hits = [bool(np.asarray(tk.metrics.top_k_hits(logits, np.array([c]), k=2))[0]) for c in range(4)]
    assert hits == [True, True, False, False]
    index_layer = decoding.SpikeCountOutput.from_config({**layer.get_config(), "tie_break": "index"})
    index_layer.build((None, T, 1))
    index_layer.set_weights(layer.get_weights())
    assert index_layer(x, training=False).numpy().tolist() == counts.tolist()


def test_g_never_overturns_counts_even_for_extreme_potentials():
    r = np.array([-1e30, -1e6, -3.0, 0.0, 3.0, 1e6, 1e30], "float32")
    g = decoding.membrane_tie_break(r).numpy()
    assert np.all(g >= 0.01 - 1e-7) and np.all(g <= 0.99 + 1e-7)
    assert np.all(np.diff(g) >= 0) and np.all(np.diff(g[1:-1]) > 0)
    top = np.float32(10.0) + g.min()           # count 10 with the lowest potential
    assert np.all(top > np.float32(9.0) + g)   # beats count 9 with any potential


@pytest.mark.parametrize("surrogate", ["bounded_relu", tk.surrogates.StraightThrough()])
def test_gradient_matches_analytic_cross_entropy(surrogate):
    scale = 2.5
    layer, (kernel, bias) = make_layer(scale=scale, surrogate=surrogate)
    x = spike_batch(32, seed=3)
    y = np.random.default_rng(4).integers(0, K, 32)
    with tf.GradientTape() as tape:
        logits = layer(x, training=True)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
    grad_kernel, grad_bias = tape.gradient(loss, [layer.kernel, layer.bias])
    counts, v_end, v_f = numpy_output_neurons(x, kernel.astype(float), bias.astype(float))
    z = scale * (counts + 0.5 + 0.49 * v_end / (1.0 + np.abs(v_end)))
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad_c = scale * (p - np.eye(K)[y])                     # dL/dc = s (p - onehot)
    if isinstance(surrogate, str):                          # a' = [0 < V_f < T] (theta = 1)
        grad_c = grad_c * ((v_f > 0) & (v_f < T))
    np.testing.assert_allclose(grad_kernel.numpy(), x.sum(1).T @ grad_c, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grad_bias.numpy(), grad_c.sum(0), rtol=1e-4, atol=1e-4)
    if not isinstance(surrogate, str):
        outside = (v_f <= 0) | (v_f >= T)
        assert outside.any() and np.abs(grad_c[outside]).sum() > 0


def test_trainable_scale_gradient_and_prediction_unchanged_by_scale():
    layer, _ = make_layer(scale=3.0, trainable_scale=True)
    x = spike_batch(32, seed=5)
    y = np.random.default_rng(6).integers(0, K, 32)
    with tf.GradientTape() as tape:
        logits = layer(x, training=True)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
    grad = tape.gradient(loss, layer.log_scale).numpy()
    z = logits.numpy().astype(float)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(grad, np.sum((p - np.eye(K)[y]) * z), rtol=1e-4)  # d/dlog s
    one, _ = make_layer(scale=1.0)
    base = one(x, training=False).numpy()
    for s in (0.1, 1.0, 7.3):
        other, _ = make_layer(scale=s)
        scaled = other(x, training=False).numpy()
        np.testing.assert_allclose(scaled, s * base, rtol=1e-5)
        assert np.array_equal(scaled.argmax(1), base.argmax(1))


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="scale"):
        decoding.SpikeCountOutput(3, scale=0.0)
    with pytest.raises(ValueError, match="tie_break"):
        decoding.SpikeCountOutput(3, tie_break="random")
    with pytest.raises(ValueError, match="batch_norm"):
        decoding.SpikeCountOutput(3, batch_norm=True)


def small_model(trainable_scale=True):
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, padding="same"),
        tk.SpikeEncoder(T), tk.TimeFlatten(),
        decoding.SpikeCountOutput(K, scale=2.0, trainable_scale=trainable_scale,
                                  surrogate=tk.surrogates.StraightThrough(), name="logits")])


def test_config_keras_file_and_savedmodel_round_trips(tmp_path):
    model = small_model()
    model.get_layer("logits").log_scale.assign(np.log(3.0))
    x = np.random.default_rng(0).random((8, 8, 8, 1)).astype("float32") * 2
    expected = model(x, training=False).numpy()
    layer = model.get_layer("logits")
    clone = decoding.SpikeCountOutput.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert isinstance(clone.surrogate, tk.surrogates.StraightThrough)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(x, training=False).numpy(), expected, rtol=1e-6)
    assert float(loaded.get_layer("logits").current_scale()) == pytest.approx(3.0)
    export_dir = str(tmp_path / "export")
    model.export(export_dir, verbose=False)
    reloaded = tf.saved_model.load(export_dir)   # keep a reference: it owns the variables
    served = reloaded.serve(tf.constant(x))
    np.testing.assert_allclose(np.asarray(served), expected, rtol=1e-6)


def test_builder_decode_option_and_with_mode():
    import models

    model = models.cifarnet(time_steps=2, width_divisor=32, decode="spike_count_st")
    layer = model.get_layer("logits")
    assert isinstance(layer, decoding.SpikeCountOutput)
    assert layer.scale == 1.0 and layer.tie_break == "membrane"
    assert isinstance(layer.surrogate, tk.surrogates.StraightThrough)
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    counts = decoding.counts_from_logits(model(x, training=False)).numpy()
    assert counts.min() >= 0 and counts.max() <= 2
    ann = tk.with_mode(model, "ann")
    assert ann(x, training=False).shape == (2, 10)
    paper = models.cifarnet(time_steps=2, width_divisor=32, decode="spike_count")
    assert "output_neurons" in [l.name for l in paper.layers]   # the paper's readout, unchanged
    tie = models.cifarnet(time_steps=2, width_divisor=32, decode="spike_count_tie")
    assert tie.get_layer("logits").surrogate == tk.surrogates.BoundedReLU()
    assert tie.get_layer("logits").tie_break == "membrane"


def test_train_flag_offers_every_builder_decode():
    from models._builder import DECODES
    from train import flags as train_flags

    assert set(train_flags.FLAGS["decode"].parser.enum_values) == set(DECODES)
    assert "spike_count_st" in DECODES


def test_synops_report_counts_the_output_layer_as_a_readout():
    model = small_model(trainable_scale=False)
    rows = {r["name"]: r for r in tk.describe_model(model)["layers"]}
    assert rows["logits"]["kind"] == "readout"


def test_exported_savedmodel_and_eval_score_with_the_membrane_rule(tmp_path):
    from eval import report

    model = small_model(trainable_scale=False)
    rng = np.random.default_rng(2)
    x = rng.random((40, 8, 8, 1)).astype("float32") * 2
    logits = model.predict(x, verbose=0)
    layer = model.get_layer("logits")
    counts = decoding.counts_from_logits(logits, layer.scale).numpy()
    # Labels where the count rule with index tie-break and the membrane rule disagree.
    y = np.where(counts.argmax(1) == logits.argmax(1), logits.argmax(1), counts.argmax(1))
    tk.export_model(model, str(tmp_path / "export"))
    loaded = report.open_model(str(tmp_path / "export"))
    np.testing.assert_allclose(np.asarray(loaded.logits(x)), logits, rtol=1e-6)
    found, _ = report.evaluate(loaded, [(x, y)])
    expected = 100.0 * np.mean(logits.argmax(1) != y)
    assert found["top1_error"] == pytest.approx(expected)
    assert expected > 0   # the data has ties that the two rules decide differently
    # Training-time metrics see the same logits, hence the same rule.
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[tk.metrics.SparseTopKAccuracy(k=1, name="top1")])
    top1 = model.evaluate(x, y, verbose=0, return_dict=True)["top1"]
    assert 100.0 * (1.0 - top1) == pytest.approx(expected, abs=1e-4)


def test_paper_model_gets_the_tie_rule_with_the_same_counts():
    import models

    paper = models.cifarnet(time_steps=3, width_divisor=32, decode="spike_count")
    tied = decoding.with_membrane_tie_break(paper)
    x = np.random.default_rng(1).integers(0, 256, (16, 32, 32, 3)).astype("float32")
    counts = paper(x, training=False).numpy()
    logits = tied(x, training=False).numpy()
    np.testing.assert_array_equal(decoding.counts_from_logits(logits).numpy(), counts)
    # the rule: among the classes with the most spikes, the highest final potential
    neurons = paper.get_layer("output_neurons")
    spikes_in = keras.Model(paper.input, neurons.input)(x, training=False).numpy()
    kernel, bias = (w.astype(float) for w in neurons.get_weights())
    ref_counts, v_end, _ = numpy_output_neurons(spikes_in, kernel, bias)
    np.testing.assert_array_equal(ref_counts, counts)
    assert np.array_equal(logits.argmax(1), numpy_rule_prediction(ref_counts, v_end))
    with pytest.raises(ValueError, match="output_neurons"):
        decoding.with_membrane_tie_break(models.cifarnet(time_steps=2, width_divisor=32))


class SpikeCountOutputLayerTest(__import__("keras.src.testing", fromlist=["TestCase"]).TestCase):
    def test_run_layer_test_mixed_precision_reports_float32_logits(self):
        """Keras's layer test (its mixed_float16 check compares the symbolic output dtype with
        the returned one): the logits are float32 under any policy."""
        self.run_layer_test(decoding.SpikeCountOutput, init_kwargs={"units": K, "scale": 2.0},
                            input_data=spike_batch(4), expected_output_shape=(4, K),
                            expected_output_dtype="float32", expected_num_trainable_weights=2)
        layer = decoding.SpikeCountOutput(K, dtype="mixed_bfloat16")
        symbolic = layer(keras.Input((T, F)))
        assert symbolic.dtype == "float32" and layer(spike_batch(2)).dtype == tf.float32
