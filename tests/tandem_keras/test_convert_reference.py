"""The converted SNN is the IF network of the ANN's own weights and the report's thresholds:
every spiking layer's spikes against a NumPy simulation built from the Keras ANN's kernels,
biases and BN statistics (``W' = theta_prev W``, the residual neuron's input weights
``[1, theta_shortcut]``), with and without an initial potential."""

import keras
import numpy as np
import pytest

import tandem_keras as tk
from tests.tandem_keras.test_convert import randomize_batch_norm
from tests.tandem_keras.test_neurons_reference import (assert_spikes_match, avg_pool_np, conv2d_np,
                                                       encode_np, neuron_np, synaptic_current_np,
                                                       tandem_add_np)

L = keras.layers
T = 4


def residual_ann():
    x = keras.Input((6, 6, 2))
    y = L.Conv2D(4, 3, padding="same", name="conv0")(x)
    y = L.BatchNormalization(name="bn0")(y)
    s0 = L.ReLU(name="relu0")(y)
    y = L.Conv2D(4, 3, padding="same", name="conv1")(s0)
    y = L.BatchNormalization(name="bn1")(y)
    y = L.ReLU(name="relu1")(y)
    y = L.Conv2D(4, 3, padding="same", name="conv2")(y)
    y = L.BatchNormalization(name="bn2")(y)
    y = L.Add(name="add")([y, s0])
    y = L.ReLU(name="relu2")(y)
    y = L.AveragePooling2D(2, name="pool")(y)
    y = L.Flatten(name="flatten")(y)
    y = L.Dense(8, activation="relu", name="dense3")(y)
    y = L.Dense(3, name="readout")(y)
    return randomize_batch_norm(keras.Model(x, y), seed=3)


def bn_of(layer):
    return {"gamma": np.asarray(layer.gamma), "beta": np.asarray(layer.beta),
            "moving_mean": np.asarray(layer.moving_mean),
            "moving_variance": np.asarray(layer.moving_variance), "eps": layer.epsilon}


def weights(ann, name):
    layer = ann.get_layer(name)
    return np.asarray(layer.kernel, np.float64), np.asarray(layer.bias, np.float64)


@pytest.mark.parametrize("v0", [0.0, 0.5])
def test_snn_spikes_are_the_if_network_of_the_ann_weights(v0):
    ann = residual_ann()
    x = np.random.default_rng(5).normal(0.5, 1.0, (16, 6, 6, 2)).astype("float32")
    snn, report = tk.convert(ann, time_steps=T, calibration_data=x, percentile=99.0,
                             neuron=tk.neurons.IF(initial_potential=v0), return_report=True)
    theta = report.thresholds
    assert set(theta) == {"relu0", "conv1", "add", "dense3"}
    names = ["relu0", "conv1", "conv2", "add", "pool", "dense3"]
    probe = keras.Model(snn.input, [snn.get_layer(n).output for n in names] + [snn.output])
    s0, s1, z2, s2, pooled, s3, logits = [np.asarray(v, np.float64) for v in probe(x)]
    conv = {"kind": "conv", "strides": 1, "padding": "same"}
    dense = {"kind": "dense"}

    # encoder: the ANN's analog conv + BN, floor(v / theta + v0) front-loaded
    k0, b0 = weights(ann, "conv0")
    bn0 = bn_of(ann.get_layer("bn0"))
    v = (conv2d_np(x, k0) + b0 - bn0["moving_mean"]) / np.sqrt(bn0["moving_variance"] + bn0["eps"])
    v = v * bn0["gamma"] + bn0["beta"]
    expected0 = encode_np(v, T, theta["relu0"], v0)
    margin0 = np.abs(np.asarray(v) / theta["relu0"] + v0 - np.round(np.asarray(v) / theta["relu0"] + v0))
    assert_spikes_match(s0, expected0, margin0 * theta["relu0"])

    # conv1 + bn1 + relu1: IF neurons on z = (theta_0 W1) s0(t) (BN folded) + b'/T
    k1, b1 = weights(ann, "conv1")
    z1 = synaptic_current_np(s0, theta["relu0"] * k1, b1, conv, bn_of(ann.get_layer("bn1")))
    expected1, margin1 = neuron_np(z1, theta["conv1"], v0=v0)
    assert_spikes_match(s1, expected1, margin1)

    # conv2 + bn2: the synapse-only current into the residual neuron
    k2, b2 = weights(ann, "conv2")
    expected_z2 = synaptic_current_np(s1, theta["conv1"] * k2, b2, conv, bn_of(ann.get_layer("bn2")))
    np.testing.assert_allclose(z2, expected_z2, rtol=1e-5, atol=1e-5)

    # add + relu2: V(t) = V(t-1) + z2(t) + theta_0 s0(t) - theta s(t-1)
    expected2, margin2 = tandem_add_np([z2, s0], theta["add"], scales=[1.0, theta["relu0"]], v0=v0)
    assert_spikes_match(s2, expected2, margin2)

    # pooling (a current) -> flatten -> dense3 + relu
    np.testing.assert_allclose(pooled, avg_pool_np(s2), atol=1e-6)
    flat = pooled.reshape(len(x), T, -1)
    k3, b3 = weights(ann, "dense3")
    expected3, margin3 = neuron_np(synaptic_current_np(flat, theta["add"] * k3, b3, dense), theta["dense3"], v0=v0)
    assert_spikes_match(s3, expected3, margin3)

    # readout: the membrane potential (theta_3 W4) c3 + b4
    k4, b4 = weights(ann, "readout")
    np.testing.assert_allclose(logits, s3.sum(axis=1) @ (theta["dense3"] * k4) + b4, rtol=1e-5, atol=1e-5)
