"""Model builders against the layer tables of method §7, written out here by hand."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import models
import tandem_keras as tk

# (layer name, class, filters/units, kernel size, stride, output shape without batch/time)
# transcribed from method §7; 'same' padding: output size = ceil(input / stride).
CIFARNET = [
    ("encoder_conv", "Conv2D", 128, 3, 1, (32, 32, 128)),
    ("tandem_conv1", "TandemConv2D", 256, 3, 2, (16, 16, 256)),
    ("tandem_conv2", "TandemConv2D", 512, 3, 2, (8, 8, 512)),
    ("tandem_conv3", "TandemConv2D", 1024, 3, 1, (8, 8, 1024)),
    ("tandem_conv4", "TandemConv2D", 512, 3, 1, (8, 8, 512)),
    ("tandem_dense1", "TandemDense", 1024, None, None, (1024,)),
]
ALEXNET_CIFAR = [
    ("encoder_conv", "Conv2D", 96, 3, 1, (32, 32, 96)),
    ("tandem_conv1", "TandemConv2D", 256, 3, 2, (16, 16, 256)),
    ("tandem_conv2", "TandemConv2D", 384, 3, 2, (8, 8, 384)),
    ("tandem_conv3", "TandemConv2D", 384, 3, 1, (8, 8, 384)),
    ("tandem_conv4", "TandemConv2D", 256, 3, 1, (8, 8, 256)),
    ("tandem_dense1", "TandemDense", 1024, None, None, (1024,)),
]
ALEXNET_IMAGENET = [  # 224 -> 56 -> 28 -> 14 -> 14 -> 7
    ("encoder_conv", "Conv2D", 96, 11, 4, (56, 56, 96)),
    ("tandem_conv1", "TandemConv2D", 256, 5, 2, (28, 28, 256)),
    ("tandem_conv2", "TandemConv2D", 384, 3, 2, (14, 14, 384)),
    ("tandem_conv3", "TandemConv2D", 384, 3, 1, (14, 14, 384)),
    ("tandem_conv4", "TandemConv2D", 256, 3, 2, (7, 7, 256)),
    ("tandem_dense1", "TandemDense", 4096, None, None, (4096,)),
    ("tandem_dense2", "TandemDense", 4096, None, None, (4096,)),
]
TABLES = {
    "cifarnet": (CIFARNET, (32, 32, 3), 10),
    "alexnet_cifar": (ALEXNET_CIFAR, (32, 32, 3), 10),
    "alexnet_imagenet": (ALEXNET_IMAGENET, (224, 224, 3), 1000),
}
T = 3


def _time_axis(mode):
    return 1 if mode == "ann" else T  # ann: [batch, 1, ...] holds the activation


@pytest.mark.parametrize("mode", ["tandem", "ann", "quantized"])
@pytest.mark.parametrize("name", sorted(TABLES))
def test_layers_match_spec7(name, mode):
    table, input_shape, num_classes = TABLES[name]
    model = models.build(name, time_steps=T, mode=mode)
    assert model.input_shape == (None, *input_shape)
    assert model.output_shape == (None, num_classes)
    weighted = [layer for layer in model.layers
                if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense,
                                          tk.TandemConv2D, tk.TandemDense))]
    # Every weighted layer but the readout is in the table, in order.
    assert [layer.name for layer in weighted[:-1]] == [row[0] for row in table]
    for layer, (lname, cls, width, kernel, stride, shape) in zip(weighted, table):
        assert type(layer).__name__ == cls, lname
        if cls == "TandemDense":
            assert layer.units == width
        else:
            assert layer.filters == width
            assert tuple(layer.kernel_size) == (kernel, kernel)
            assert tuple(layer.strides) == (stride, stride)
            assert layer.padding == "same"
        if cls == "Conv2D":  # analog encoder convolution: image-shaped, no time axis
            assert layer.output.shape[1:] == shape
        else:
            assert layer.output.shape[1:] == (_time_axis(mode), *shape), lname
        if cls != "Conv2D":
            assert layer.mode == mode and layer.batch_norm
    # The encoder turns the encoder conv's output into a spike train of T steps.
    encoder = model.get_layer("encoder")
    assert isinstance(encoder, tk.SpikeEncoder)
    assert encoder.output.shape[1:] == (_time_axis(mode), *table[0][5])
    assert isinstance(model.get_layer("encoder_bn"), keras.layers.BatchNormalization)
    # No pooling anywhere: downsampling is by strides only (method §7).
    assert not any("Pooling" in type(layer).__name__ for layer in model.layers)


@pytest.mark.parametrize("decode", ["membrane", "spike_count"])
def test_readout(decode):
    model = models.build("cifarnet", time_steps=T, decode=decode)
    logits = model.get_layer("logits")
    if decode == "membrane":  # Dense on the spike counts of tandem_dense1 (after dropout 0.2)
        assert isinstance(logits, keras.layers.Dense) and logits.units == 10
        assert isinstance(model.get_layer("spike_count"), tk.SpikeCount)
        assert model.get_layer("dropout").rate == pytest.approx(0.2)
    else:  # IF output neurons without BN, logits are their spike counts
        out = model.get_layer("output_neurons")
        assert isinstance(out, tk.TandemDense) and out.units == 10 and not out.batch_norm
        assert isinstance(logits, tk.SpikeCount)


SLOW_FORWARD = {("vgg11", "membrane"), ("resnet20", "spike_count"), ("alexnet_imagenet", "spike_count")}


@pytest.mark.parametrize("name, decode", [
    pytest.param(n, d, marks=pytest.mark.slow) if (n, d) in SLOW_FORWARD else (n, d)
    for n in sorted(models.BUILDERS) for d in ("membrane", "spike_count")])
def test_forward_pass(name, decode):
    shape = {"alexnet_imagenet": (64, 64, 3), "digits": (8, 8, 1)}.get(name, (32, 32, 3))
    model = models.build(name, input_shape=shape, num_classes=7, time_steps=T, decode=decode)
    images = np.random.default_rng(0).uniform(0, 255, (2, *shape)).astype("float32")
    # Training mode (batch statistics, so the spiking layers are active), traced as fit does.
    logits = tf.function(lambda x: model(x, training=True))(images)
    assert logits.shape == (2, 7) and logits.dtype == "float32"
    logits = np.asarray(logits)
    assert np.all(np.isfinite(logits))
    if decode == "spike_count":  # spike counts of T steps: integers in [0, T]
        assert np.array_equal(logits, np.round(logits))
        assert logits.min() >= 0 and logits.max() <= T


def test_normalization_layer():
    model = models.build("cifarnet", time_steps=1)
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    mean = np.array([0.4914, 0.4822, 0.4465])  # method §8
    std = np.array([0.2023, 0.1994, 0.2010])
    got = np.asarray(model.get_layer("normalize")(images))
    np.testing.assert_allclose(got, (images / 255.0 - mean) / std, rtol=1e-4, atol=1e-4)
    raw = models.build("cifarnet", time_steps=1, include_preprocessing=False)
    assert "normalize" not in [layer.name for layer in raw.layers]


def test_digits_model_on_rgb_images():
    model = models.build("digits", input_shape=(16, 16, 3), num_classes=4)
    images = np.full((1, 16, 16, 3), 255.0, "float32")
    got = np.asarray(model.get_layer("normalize")(images))
    np.testing.assert_allclose(got, (1.0 - 0.3053) / 0.3760, rtol=1e-4)


def test_with_mode_keeps_the_architecture():
    model = models.build("digits", mode="quantized")
    snn = tk.with_mode(model, "tandem")
    assert [layer.name for layer in snn.layers] == [layer.name for layer in model.layers]
    assert all(layer.mode == "tandem" for layer in snn.layers if hasattr(layer, "mode"))


@pytest.mark.parametrize("kwargs, word", [
    ({"decode": "rate"}, "decode"),
    ({"mode": "spiking"}, "mode"),
    ({"time_steps": 0}, "time_steps"),
    ({"time_steps": 2.5}, "time_steps"),
    ({"num_classes": 0}, "num_classes"),
    ({"input_shape": (32, 32)}, "input_shape"),
    ({"dropout": 1.0}, "dropout"),
])
def test_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        models.build("digits", **kwargs)


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model 'resnet'.*cifarnet"):
        models.build("resnet")


def test_summary_names_say_what_layers_are():
    model = models.build("digits", decode="spike_count")
    names = [layer.name for layer in model.layers]
    assert names == ["images", "normalize", "encoder_conv", "encoder_bn", "encoder",
                     "tandem_conv1", "flatten", "tandem_dense1", "output_neurons", "logits"]


def test_spike_count_decoding_with_dropout_runs_eagerly():
    model = models.build("digits", decode="spike_count", dropout=0.2)
    counts = np.asarray(model(np.full((2, 8, 8, 1), 200.0, "float32"), training=True))
    time_steps = model.get_layer("encoder").time_steps
    # the output neurons still spike: integer counts within the window, despite the
    # dropout-scaled (non-binary) input spike train in training
    assert counts.shape == (2, 10)
    np.testing.assert_array_equal(counts, np.round(counts))
    assert counts.min() >= 0 and counts.max() <= time_steps
