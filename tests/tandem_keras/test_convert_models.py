"""tk.convert on whole networks: keras.applications' VGG16 and ResNet50 at small input and
the project's own --mode=ann models (model.keras of tandem layers in ann mode)."""

import keras
import numpy as np
import pytest

import models
import tandem_keras as tk
from tests.tandem_keras.test_convert import assert_ann_mode_equals, randomize_batch_norm

L = keras.layers


def max_to_average(model):
    """The ANN with every MaxPooling2D replaced by an AveragePooling2D of the same config."""
    def clone(layer):
        cls = L.AveragePooling2D if isinstance(layer, L.MaxPooling2D) else type(layer)
        return cls.from_config(layer.get_config())
    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def check_application(ann, shape, expected_counts):
    x = np.random.default_rng(2).random((3,) + shape, dtype=np.float32) * 255.0
    with pytest.warns(UserWarning, match="average pooling"):
        snn, report = tk.convert(ann, time_steps=4, calibration_data=x, return_report=True)
    counts = {}
    for layer in snn.layers:
        counts[type(layer).__name__] = counts.get(type(layer).__name__, 0) + 1
    assert {k: counts.get(k, 0) for k in expected_counts} == expected_counts
    assert len(report.replaced_max_pooling) == expected_counts["AveragePooling2D"]
    # max pooling replaced: the converted model's ANN is the ANN with average pooling ...
    assert_ann_mode_equals(max_to_average(ann), snn, x, rtol=2e-4)
    # ... and with the spiking max pooling (OR of spikes) the ANN itself
    spiking = tk.convert(ann, time_steps=4, max_pooling="spiking",
                         thresholds=report.thresholds)
    assert_ann_mode_equals(ann, spiking, x, rtol=2e-4)
    out = np.asarray(snn(x))
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)   # the readout keeps its softmax


@pytest.mark.slow   # 25-40 s on the shared machine; test_convert.py has the fast paths
def test_vgg16_small_input():
    ann = keras.applications.VGG16(weights=None, input_shape=(32, 32, 3), classes=10)
    check_application(ann, (32, 32, 3), {"SpikeEncoder": 1, "TandemConv2D": 12, "TandemDense": 2,
                                         "AveragePooling2D": 5, "SpikeCount": 1, "Dense": 1})


@pytest.mark.slow   # 40-60 s
def test_resnet50_small_input():
    ann = randomize_batch_norm(keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3),
                                                           classes=10))
    check_application(ann, (64, 64, 3), {"SpikeEncoder": 1, "TandemConv2D": 52, "TandemAdd": 16,
                                         "AveragePooling2D": 1, "GlobalAveragePooling2D": 1,
                                         "SpikeCount": 1, "Dense": 1})
    synapse_only = [layer for layer in tk.convert(ann, time_steps=2).layers
                    if isinstance(layer, tk.TandemConv2D) and layer.neuron is None]
    assert len(synapse_only) == 16 + 4   # every block's last conv, every projection shortcut


@pytest.mark.parametrize("decode", ["membrane", "spike_count"])
def test_own_ann_export_is_a_mode_switch_plus_normalization(tmp_path, decode):
    ann = models.cifarnet(time_steps=4, mode="ann", width_divisor=16, decode=decode)
    for layer in ann.layers:    # trained-looking BN statistics
        if isinstance(layer, tk.TandemLayer) and layer.batch_norm:
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(np.linspace(-0.5, 0.5, c))
            layer.moving_variance.assign(np.linspace(0.5, 2.0, c))
    path = str(tmp_path / "model.keras")
    ann.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(3).random((4, 32, 32, 3), dtype=np.float32) * 255.0
    snn, report = tk.convert(loaded, time_steps=4, calibration_data=x, return_report=True)
    assert_ann_mode_equals(loaded, snn, x)
    assert all(getattr(layer, "mode", "tandem") == "tandem" for layer in snn.layers)
    assert [type(a).__name__ for a in loaded.layers] == [type(b).__name__ for b in snn.layers]
    if decode == "membrane":
        assert len(report.thresholds) == 6 and 1.0 not in report.thresholds.values()
    else:   # the output neurons' spikes are the logits: their threshold is kept
        assert report.thresholds["output_neurons"] == 1.0


def test_ann_mode_neurons_take_the_conversion_default_spiking_modes_keep_theirs():
    # An "ann"-mode model's neurons never ran (the paper's IF here): with neuron=None the
    # conversion gives it the default recipe; a model trained in a spiking mode keeps its own.
    x = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32) * 255.0
    own = tk.neurons.IF(initial_potential=0.0)
    for mode, expected in [("ann", tk.conversion.DEFAULT_NEURON), ("tandem", own)]:
        model = models.cifarnet(time_steps=4, mode=mode, width_divisor=16, neuron=own)
        snn = tk.convert(model, time_steps=4, calibration_data=x)
        neurons = [layer.neuron for layer in snn.layers if getattr(layer, "neuron", None) is not None]
        assert len(neurons) == 6 and all(n == expected for n in neurons), (mode, neurons)
    given = tk.neurons.IF(initial_potential=0.5)
    snn = tk.convert(models.cifarnet(time_steps=4, mode="tandem", width_divisor=16, neuron=own),
                     time_steps=4, calibration_data=x, neuron=given)
    assert all(layer.neuron == given for layer in snn.layers if getattr(layer, "neuron", None) is not None)
