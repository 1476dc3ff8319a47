"""A real learning test: a small tandem SNN learns scikit-learn's 8x8 digits.

The trained network is evaluated as an SNN twice: by Keras (inference mode: folded BN,
IF dynamics) and by the independent float64 NumPy SNN of test_neurons_reference.py run
on the trained weights. Both must reach >= 95% test accuracy.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk
from tests.tandem_keras.test_neurons_reference import encode_np, layer_variables, tandem_layer_np

sklearn_datasets = pytest.importorskip("sklearn.datasets")
model_selection = pytest.importorskip("sklearn.model_selection")

T = 4
EPS = 1e-3


def digits_split():
    data = sklearn_datasets.load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    return model_selection.train_test_split(x, data.target.astype(np.int32), test_size=0.25,
                                            random_state=0, stratify=data.target)


def build():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same"),
        keras.layers.BatchNormalization(),
        tk.SpikeEncoder(T),
        tk.TandemConv2D(32, 3, strides=2, epsilon=EPS),
        tk.TimeFlatten(),
        tk.TandemDense(64, epsilon=EPS),
        tk.SpikeCount(),
        keras.layers.Dense(10),
    ])


def numpy_snn_logits(model, x):
    """The trained model run by the float64 NumPy SNN (inference: moving statistics)."""
    conv, bnl, _, tconv, _, tdense, _, head = model.layers
    k0, b0 = [np.asarray(w, np.float64) for w in conv.get_weights()]
    g, be, mm, mv = [np.asarray(w, np.float64) for w in bnl.get_weights()]
    v = tf.nn.conv2d(x.astype(np.float64), k0, 1, "SAME").numpy() + b0
    v = g * (v - mm) / np.sqrt(mv + bnl.epsilon) + be
    s = encode_np(v, T)
    for layer, op in ((tconv, {"kind": "conv", "strides": 2, "padding": "same"}),
                      (tdense, {"kind": "dense"})):
        w = {n: np.asarray(var, np.float64) for n, var in layer_variables(layer).items()}
        bn = dict(gamma=w["gamma"], beta=w["beta"], moving_mean=w["moving_mean"],
                  moving_variance=w["moving_variance"], eps=EPS)
        if op["kind"] == "dense":
            s = s.reshape(s.shape[:2] + (-1,))
        s, _ = tandem_layer_np(s, w["kernel"], w["bias"], op, 1.0, bn, training=False)
    kr, br = [np.asarray(w, np.float64) for w in head.get_weights()]
    return s.sum(axis=1) @ kr + br


@pytest.mark.slow
def test_tandem_snn_learns_digits():
    keras.utils.set_random_seed(0)
    x_train, x_test, y_train, y_test = digits_split()
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=32, epochs=15, verbose=0)
    logits = np.asarray(model.predict(x_test, batch_size=256, verbose=0))
    keras_acc = float((logits.argmax(axis=1) == y_test).mean())
    ref_logits = numpy_snn_logits(model, x_test)
    ref_acc = float((ref_logits.argmax(axis=1) == y_test).mean())
    agree = float((ref_logits.argmax(axis=1) == logits.argmax(axis=1)).mean())
    print(f"digits: keras SNN {keras_acc:.4f}, numpy SNN {ref_acc:.4f}, agreement {agree:.4f}")
    assert keras_acc >= 0.95
    assert ref_acc >= 0.95
    assert agree >= 0.98
    # it is a spiking network: the hidden layers emit 0/1 trains with counts in [0, T]
    probe = keras.Model(model.inputs, [model.layers[3].output, model.layers[4].output])
    for s in probe.predict(x_test[:32], verbose=0):
        assert np.all((s == 0) | (s == 1)) and s.shape[1] == T
