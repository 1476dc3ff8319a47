"""resnet20 and vgg11 against their papers' layer tables (written out here by hand), and
their SNN forward checked layer by layer against the NumPy references of method §3."""
import keras
import numpy as np
import pytest

import models
import tandem_keras as tk
from tandem_keras._keras_internals import producer
from tests.tandem_keras.test_neurons_reference import (
    assert_spikes_match,
    avg_pool_np,
    neuron_layer_np,
    tandem_add_np,
    synaptic_current_np,
)

T = 4


def _conv_rows(model):
    return [(l.name, l.filters, l.kernel_size[0], l.strides[0], l.neuron is not None,
             tuple(l.output.shape[2:])) for l in model.layers if isinstance(l, tk.TandemConv2D)]


def test_resnet20_is_he_et_al_cifar_resnet():
    """Section 4.2: 3 stages of n = 3 blocks, 16/32/64 filters, 32x32 -> 16x16 -> 8x8,
    option B shortcuts (1x1 with BN where the shape changes), 0.27M parameters."""
    model = models.resnet20(time_steps=T)
    rows = _conv_rows(model)
    expected = []
    for stage, (filters, size) in enumerate([(16, 32), (32, 16), (64, 8)], start=1):
        for block in range(1, 4):
            stride = 2 if stage > 1 and block == 1 else 1
            prefix = f"stage{stage}_block{block}"
            expected += [(f"{prefix}_conv1", filters, 3, stride, True, (size, size, filters)),
                         (f"{prefix}_conv2", filters, 3, 1, False, (size, size, filters))]
            if stride == 2:
                expected.append((f"{prefix}_shortcut", filters, 1, 2, False, (size, size, filters)))
    assert rows == expected
    adds = [l for l in model.layers if isinstance(l, tk.TandemAdd)]
    assert len(adds) == 9 and all(l.neuron == tk.neurons.IF(initial_potential=0.5) for l in adds)
    assert model.get_layer("encoder_conv").filters == 16 and model.output_shape == (None, 10)
    assert 0.26e6 < model.count_params() < 0.28e6           # He et al.: 0.27M
    assert sum(isinstance(l, tk.TandemAdd) for l in models.resnet20(depth=32).layers) == 15
    assert models.resnet20(depth=56).name == "resnet56"
    for bad in (21, 2, "20"):
        with pytest.raises(ValueError, match="depth must be 6n \\+ 2"):
            models.resnet20(depth=bad)


def test_vgg11_is_configuration_a_with_average_pooling():
    model = models.vgg11(time_steps=T)
    assert model.get_layer("encoder_conv").filters == 64
    rows = [(r[0], r[1], r[5][0]) for r in _conv_rows(model)]
    assert rows == [("tandem_conv1", 128, 16), ("tandem_conv2", 256, 8), ("tandem_conv3", 256, 8),
                    ("tandem_conv4", 512, 4), ("tandem_conv5", 512, 4), ("tandem_conv6", 512, 2),
                    ("tandem_conv7", 512, 2)]
    pools = [l for l in model.layers if isinstance(l, tk.AveragePooling2D)]
    assert [l.output.shape[2] for l in pools] == [16, 8, 4, 2, 1]
    assert model.get_layer("tandem_dense1").units == 512 and model.output_shape == (None, 10)
    # 3x3 convolutions 64..512 (9.22M) + 512x512 + 512x10 dense, with biases and BN
    assert 9.48e6 < model.count_params() < 9.52e6
    with pytest.raises(ValueError, match="too small for five 2x2 poolings"):
        models.vgg11(input_shape=(16, 16, 3))


def _layer_outputs(model, x):
    """Every layer's output in one training-mode call (BN with the batch's statistics)."""
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    probe = keras.Model(model.inputs, [l.output for l in layers])
    outputs = dict(zip([l.name for l in layers], [np.asarray(o) for o in probe(x, training=True)]))
    return layers, outputs


def _input_values(layer, outputs):
    inbound = layer.input if isinstance(layer.input, list) else [layer.input]
    return [outputs[producer(t)[0].name] for t in inbound]


def _bn(layer):
    weights = {v.path.split("/")[-1]: v.numpy().astype(np.float64) for v in layer.weights}
    bias = weights.get("bias")
    bn = None
    if layer.batch_norm:
        bn = dict(gamma=weights["gamma"], beta=weights["beta"], moving_mean=weights["moving_mean"],
                  moving_variance=weights["moving_variance"], eps=layer.epsilon)
    return weights["kernel"], bias, bn


@pytest.mark.parametrize("name", ["resnet20", "vgg11"])
def test_snn_forward_layer_by_layer_against_numpy(name):
    """A training-mode forward (BN folded with the batch statistics, method §3): every tandem
    layer, synapse-only layer, TandemAdd and pooling equals its NumPy reference on the
    values the model fed it."""
    keras.utils.set_random_seed(3)
    model = models.build(name, time_steps=T, width_divisor=8, dropout=0.0)
    x = np.random.default_rng(4).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    layers, outputs = _layer_outputs(model, x)
    checked = set()
    for layer in layers:
        if not isinstance(layer, (tk.TandemConv2D, tk.TandemDense, tk.TandemAdd, tk.AveragePooling2D)):
            continue
        inputs = _input_values(layer, outputs)
        got = outputs[layer.name]
        if isinstance(layer, tk.AveragePooling2D):
            np.testing.assert_allclose(got, avg_pool_np(inputs[0]), rtol=1e-6, atol=1e-7)
        elif isinstance(layer, tk.TandemAdd):
            expected, margin = tandem_add_np(inputs, layer.threshold, v0=layer.neuron.initial_potential)
            assert_spikes_match(got, expected, margin)
        else:
            kernel, bias, bn = _bn(layer)
            op = ({"kind": "dense"} if isinstance(layer, tk.TandemDense) else
                  {"kind": "conv", "strides": layer.strides[0], "padding": layer.padding})
            if layer.neuron is None:
                np.testing.assert_allclose(got, synaptic_current_np(inputs[0], kernel, bias, op, bn, True),
                                           rtol=1e-4, atol=1e-4)
            else:
                expected, margin = neuron_layer_np(inputs[0], kernel, bias, op, layer.threshold, bn, True,
                                                   v0=layer.neuron.initial_potential)
                assert_spikes_match(got, expected, margin, max_excluded_fraction=0.02)
        checked.add(type(layer).__name__)
    assert checked >= ({"TandemConv2D", "TandemAdd"} if name == "resnet20" else
                       {"TandemConv2D", "TandemDense", "AveragePooling2D"})
    spikes = [outputs[l.name] for l in layers if isinstance(l, (tk.TandemAdd, tk.TandemConv2D))
              and getattr(l, "neuron", True) is not None]
    assert 0.01 < np.mean([s.mean() for s in spikes]) < 0.9        # the network is active
