"""The tie rule of tandem_keras.metrics against an independent NumPy reference.

Reference: rank classes with ``np.argsort(-logits, kind="stable")`` (ties -> lower class
index first) and look for the label among the first k. Logits are small integers (spike
counts) so most rows hold ties.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk
from tandem_keras.metrics import SparseTopKAccuracy, top_k_hits


def reference_hits(logits, labels, k):
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return np.any(order == labels[:, None], axis=1)


def tied_batch(seed, batch=400, classes=10, top=3):
    rng = np.random.default_rng(seed)
    logits = rng.integers(0, top + 1, (batch, classes)).astype(np.float32)  # counts in [0, T]
    labels = rng.integers(0, classes, batch)
    return logits, labels


@pytest.mark.parametrize("k", [1, 2, 5, 10])
def test_top_k_hits_equals_stable_argsort_on_tied_logits(k):
    logits, labels = tied_batch(seed=k)
    ties = np.array([np.sum(row == row[y]) > 1 for row, y in zip(logits, labels)])
    assert ties.mean() > 0.5  # the case under test: most labels share their logit
    np.testing.assert_array_equal(np.asarray(top_k_hits(logits, labels, k)),
                                  reference_hits(logits, labels, k))


def test_top_1_is_argmax_and_ties_go_to_the_lower_index():
    logits = np.array([[1.0, 4.0, 4.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 1.0, 3.0, 3.0]])
    labels = np.array([2, 0, 3])
    np.testing.assert_array_equal(np.asarray(top_k_hits(logits, labels, 1)), [False, True, False])
    np.testing.assert_array_equal(np.asarray(top_k_hits(logits, labels, 2)), [True, True, True])
    np.testing.assert_array_equal(np.asarray(top_k_hits(logits, labels[:, None], 1)),
                                  logits.argmax(-1) == labels)


def test_tf_top_k_breaks_ties_the_same_way():
    """The module's claim: tf.math.top_k orders ties by lower index, like the rule."""
    logits, _ = tied_batch(seed=7)
    np.testing.assert_array_equal(tf.math.top_k(logits, k=logits.shape[1]).indices.numpy(),
                                  np.argsort(-logits, axis=1, kind="stable"))


def test_keras_in_top_k_differs_on_ties():
    """Why the metric exists: Keras's top-k counts every tied class as a hit."""
    logits = np.array([[3.0, 3.0, 3.0, 0.0]], np.float32)
    labels = np.array([2])
    keras_metric = keras.metrics.SparseTopKCategoricalAccuracy(k=1)
    keras_metric.update_state(labels, logits)
    ours = SparseTopKAccuracy(k=1)
    ours.update_state(labels, logits)
    assert float(keras_metric.result()) == 1.0
    assert float(ours.result()) == 0.0


@pytest.mark.parametrize("k", [1, 5])
def test_training_metric_agrees_with_eval_function_in_compiled_evaluate(k):
    """model.evaluate (compiled, batched, label shape [b, 1]) gives the fraction of hits of
    top_k_hits on the same tied batch, and of the NumPy reference."""
    logits, labels = tied_batch(seed=11 + k, batch=300)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Identity()])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[SparseTopKAccuracy(k=k, name="topk")])
    result = model.evaluate(logits, labels[:, None].astype(np.float32), batch_size=64,
                            verbose=0, return_dict=True)
    expected = reference_hits(logits, labels, k).mean()
    assert np.mean(np.asarray(top_k_hits(logits, labels, k))) == expected
    np.testing.assert_allclose(result["topk"], expected, rtol=1e-6)


def test_metric_round_trips_through_config_and_keras_file(tmp_path):
    metric = SparseTopKAccuracy(k=3, name="top3")
    clone = SparseTopKAccuracy.from_config(metric.get_config())
    assert (clone.k, clone.name) == (3, "top3")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    model.compile(loss="sparse_categorical_crossentropy", metrics=[metric])
    x, y = np.eye(4, dtype=np.float32), np.arange(4)
    before = model.evaluate(x, y, verbose=0, return_dict=True)["top3"]
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    after = loaded.evaluate(x, y, verbose=0, return_dict=True)["top3"]
    assert before == after


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "5"])
def test_bad_k_rejected(bad):
    with pytest.raises(ValueError, match="k must be an integer"):
        SparseTopKAccuracy(k=bad)
    with pytest.raises(ValueError, match="k must be an integer"):
        top_k_hits(np.zeros((1, 3)), np.zeros(1), bad)


def test_public_name():
    assert tk.metrics.SparseTopKAccuracy is SparseTopKAccuracy
