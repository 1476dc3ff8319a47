"""tk.export_nir: the exported NIR graph, run by an independent NumPy interpreter
(tests/_nir_numpy.py), reproduces the Keras model's spike trains bit for bit."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

nir = pytest.importorskip("nir")

import models  # noqa: E402
import tandem_keras as tk  # noqa: E402
from tests import _nir_numpy  # noqa: E402


def _keras_spikes(model, images, names):
    """Per-layer spike trains of the Keras model as ``[T, batch, C, H, W]``, ``[T, batch, C, L]``
    or ``[T, batch, F]``."""
    outputs = keras.Model(model.inputs, [model.get_layer(n).output for n in names]).predict(
        images, batch_size=128, verbose=0)
    result = {}
    for name, spikes in zip(names, outputs if len(names) > 1 else [outputs]):
        spikes = np.moveaxis(np.asarray(spikes), 1, 0)
        result[name] = np.moveaxis(spikes, -1, 2) if spikes.ndim >= 4 else spikes   # channels first
    return result


def _neuron_layers(model):
    """Names of the layers with neurons: tandem layers (not synapse-only) and TandemAdd."""
    residual = getattr(tk, "TandemAdd", ())
    return [layer.name for layer in model.layers
            if (isinstance(layer, tk.TandemLayer) and getattr(layer, "neuron", "if") is not None)
            or (residual and isinstance(layer, residual))]


def _check_exact(model, images, tmp_path, decoding, min_spikes=20, type_check=True):
    path = tmp_path / "model.nir"
    tk.export_nir(model, path)
    graph = nir.read(str(path), type_check=type_check)  # the file, not the in-memory graph
    assert graph.metadata["decoding"] == decoding
    assert int(graph.metadata["time_steps"]) == model.get_layer("encoder").time_steps
    values, near = _nir_numpy.run(graph, tk.encode_for_nir(model, images))
    names = _neuron_layers(model)
    keras_spikes = _keras_spikes(model, images, names)
    flips = 0
    for name in names:
        ours, theirs = values[name + "_if"], keras_spikes[name]
        assert ours.shape == theirs.shape, name
        assert theirs.sum() >= min_spikes, f"{name}: too few spikes for a meaningful check"
        mismatches = int(np.sum(ours != theirs))
        # Neuron-steps within 1e-5 of threshold are reported apart: only they can flip from a
        # different float32 summation order (TF's matmul and NumPy's), and a flip moves one
        # spike by a step (reset by subtraction: the potentials re-converge within ~1e-5 at
        # the next spike of either), so at most two spikes per such step may differ, and
        # differing spikes must be rare (training's thread scheduling decides whether any occur).
        print(f"{name}: {theirs.size} neuron-steps, {int(theirs.sum())} spikes, "
              f"{near[name + '_if']} within 1e-5 of threshold, {mismatches} differ")
        assert mismatches <= max(2, int(theirs.sum()) // 1000), f"{name}: {mismatches} spikes differ"
        assert mismatches <= 2 * near[name + "_if"], (
            f"{name}: {mismatches} spikes differ ({near[name + '_if']} near threshold)")
        flips += mismatches
    if flips:  # a moved spike may leave T: the readout then differs by one spike's weight
        return
    logits = values["output"].sum(axis=0)
    if logits.ndim == 4:  # [batch, C, H, W] -> channels-last
        logits = np.moveaxis(logits, 1, -1)
    expected = model.predict(images, batch_size=128, verbose=0)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(logits.argmax(1), expected.argmax(1))


def _fit_briefly(model, images, labels, epochs=1, liven=False):
    """A few Adam steps (BN moving statistics move off their initial values); ``liven``
    then shifts each tandem layer's BN offset up by a random 0.4-1.0 so that random
    weights spike at a rate that makes the comparison meaningful."""
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, labels, batch_size=32, epochs=epochs, verbose=0)
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if liven and isinstance(layer, tk.TandemLayer) and layer.batch_norm and layer.trainable:
            layer.beta.assign(layer.beta + rng.uniform(0.4, 1.0, layer.beta.shape).astype("float32"))


def test_digits_model_spikes_bit_for_bit(tmp_path):
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(1)
    x, y = load_digits(return_X_y=True)
    x = (x.reshape(-1, 8, 8, 1) * (255.0 / 16.0)).astype("float32")
    model = models.digits(time_steps=4)
    _fit_briefly(model, x[:1437], y[:1437], epochs=1)  # a trained model, about 90% accurate
    _check_exact(model, x[1437:], tmp_path, "membrane")


@pytest.mark.slow
def test_cifarnet_shaped_stride2_same_spikes_bit_for_bit(tmp_path):
    """Stride-2 'same' convolutions on even sizes: TF pads 0 top/left, 1 bottom/right."""
    keras.utils.set_random_seed(2)
    model = models.cifarnet(input_shape=(16, 16, 3), width_divisor=16, time_steps=5, dropout=0.2)
    images = np.random.default_rng(0).uniform(0, 255, (96, 16, 16, 3)).astype("float32")
    _fit_briefly(model, images, np.arange(96) % 10, liven=True)
    _check_exact(model, images[:64], tmp_path, "membrane")


@pytest.mark.slow
def test_hand_built_sequential_spike_count_decoding(tmp_path):
    """TimeDistributed(Flatten), odd sizes (symmetric 'same'), 'valid', even kernels, dilation."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((9, 9, 2)),
        keras.layers.Conv2D(6, 3, padding="same"), keras.layers.BatchNormalization(),
        tk.SpikeEncoder(time_steps=6, name="encoder"),
        tk.TandemConv2D(8, 3, strides=2, name="c1"),                        # 9 -> 5, pads 1/1
        tk.TandemConv2D(8, 2, name="c2"),                                   # even kernel: 0/1
        tk.TandemConv2D(8, 3, dilation_rate=2, name="c3"),                  # dilated 'same'
        tk.TandemConv2D(8, (2, 3), strides=(1, 2), padding="valid", threshold=0.7, name="c4"),
        keras.layers.TimeDistributed(keras.layers.Flatten()),
        tk.TandemDense(16, name="d1"), keras.layers.Dropout(0.1),
        tk.TandemDense(5, batch_norm=False, name="out"), tk.SpikeCount(),
    ])
    images = np.random.default_rng(1).normal(1.0, 2.0, (64, 9, 9, 2)).astype("float32")
    _fit_briefly(model, images, np.arange(64) % 5, liven=True)
    _check_exact(model, images, tmp_path, "spike_count")


@pytest.mark.parametrize("size,kernel,stride,dilation,padding", [
    (8, 3, 2, 1, "same"), (7, 3, 2, 1, "same"), (6, 4, 1, 1, "same"), (9, 5, 3, 1, "same"),
    (8, 2, 1, 3, "same"), (8, 3, 2, 1, "valid"), (11, 11, 4, 1, "same")])
def test_conv_mapping_matches_tf_conv2d(size, kernel, stride, dilation, padding):
    """The exported Conv2d (OIHW, symmetric padding) equals tf.nn.conv2d (HWIO, TF padding)."""
    keras.utils.set_random_seed(4)
    layer = tk.TandemConv2D(3, kernel, strides=stride, dilation_rate=dilation, padding=padding,
                            batch_norm=False)
    layer(tf.zeros([1, 1, size, size, 2]))
    graph = tk.export_nir(keras.Sequential([keras.Input((size, size, 2)), tk.SpikeEncoder(1), layer]))
    node = graph.nodes[layer.name]
    x = np.random.default_rng(5).integers(0, 2, (4, size, size, 2)).astype("float32")
    expected = tf.nn.conv2d(x, layer.kernel, stride, padding.upper(), dilations=dilation).numpy()
    got = _nir_numpy.conv2d(np.transpose(x, (0, 3, 1, 2)), node) - node.bias[None, :, None, None]
    np.testing.assert_allclose(np.transpose(got, (0, 2, 3, 1)), expected, atol=1e-5)


def test_every_builder_exports(tmp_path):
    for name in sorted(models.BUILDERS):
        kwargs = {"input_shape": (64, 64, 3)} if name == "alexnet_imagenet" else {}
        for decode in ("membrane", "spike_count"):
            model = models.build(name, time_steps=3, decode=decode, width_divisor=16, **kwargs)
            graph = tk.export_nir(model, tmp_path / f"{name}_{decode}.nir")
            assert graph.metadata["decoding"] == decode
            spiking = [layer for layer in model.layers  # layers with neurons (not synapse-only)
                       if isinstance(layer, (tk.TandemLayer, tk.TandemAdd)) and layer.neuron is not None]
            assert sum(type(n).__name__ == "IF" for n in graph.nodes.values()) == len(spiking)
            last = [layer for layer in model.layers if not isinstance(layer, keras.layers.Dropout)][-1]
            assert list(graph.nodes["output"].output_type["output"]) == [last.output.shape[-1]]


def test_dense_after_flatten_is_reordered_to_chw():
    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.Input((2, 3, 4)), tk.SpikeEncoder(2), tk.TimeFlatten(name="f"),
                              tk.TandemDense(5, batch_norm=False, name="d")])
    model(np.zeros((1, 2, 3, 4), "float32"))
    graph = tk.export_nir(model)
    kernel = model.get_layer("d").kernel.numpy()  # rows in (h, w, c) order
    weight = graph.nodes["d"].weight               # columns in (c, h, w) order
    for h, w, c in np.ndindex(2, 3, 4):
        np.testing.assert_array_equal(weight[:, c * 6 + h * 3 + w], kernel[h * 12 + w * 4 + c])
    assert graph.nodes["f"].start_dim == 0 and list(graph.nodes["f"].output_type["output"]) == [24]


def test_metadata_and_neurons():
    model = models.digits(time_steps=7, decode="spike_count")
    graph = tk.export_nir(model)
    meta = graph.metadata
    assert (meta["time_steps"], meta["decoding"], meta["tandem_keras_version"]) == (7, "spike_count", tk.__version__)
    assert meta["reset"] == "subtract" and meta["threshold_rule"] == "v >= v_threshold"
    neuron = graph.nodes["tandem_conv1_if"]
    assert isinstance(neuron, nir.IF) and neuron.metadata == {"reset": "subtract", "v_initial": 0.5}
    np.testing.assert_array_equal(neuron.v_threshold, 1.0)
    _, bias = model.get_layer("tandem_conv1").folded_weights()
    np.testing.assert_array_equal(graph.nodes["tandem_conv1"].bias, bias.numpy() / np.float32(7))


def test_readout_through_pooling_and_added_counts(tmp_path):
    """After SpikeCount: Keras's average pooling ('valid': AvgPool2d; 'same': SumPool2d and
    Scale by the window's elements inside the image), global average pooling (AvgPool2d +
    Flatten), and an Add of two branches' counts (two edges into one node)."""
    keras.utils.set_random_seed(8)
    L = keras.layers
    inp = keras.Input((9, 9, 2))
    s = tk.SpikeEncoder(4, name="encoder")(L.BatchNormalization()(L.Conv2D(6, 3, padding="same")(inp)))
    a = tk.TandemConv2D(6, 3, name="a")(s)
    b = tk.TandemConv2D(6, 3, strides=2, name="b")(a)
    pooled_a = L.AveragePooling2D(3, 2, padding="same", name="avg_same")(tk.SpikeCount()(a))  # 9 -> 5
    pooled_b = L.AveragePooling2D(1, 1, name="avg_valid")(tk.SpikeCount()(b))
    x = L.Flatten()(L.Add(name="add_counts")([pooled_a, pooled_b]))
    g = L.GlobalAveragePooling2D(name="gap")(tk.SpikeCount()(b))
    out = L.Add()([L.Dense(5, name="dense")(x), L.Dense(5, name="logits")(g)])
    model = keras.Model(inp, out)
    images = np.random.default_rng(2).uniform(0, 3, (64, 9, 9, 2)).astype("float32")
    _fit_briefly(model, images, np.arange(64) % 5, liven=True)
    graph = tk.export_nir(model)
    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    assert (kinds["avg_same"], kinds["avg_same_scale"], kinds["avg_valid"], kinds["gap"]) == (
        "SumPool2d", "Scale", "AvgPool2d", "AvgPool2d")
    assert sorted(a for a, b in graph.edges if b == "output") == ["dense", "logits"]
    _check_exact(model, images, tmp_path, "membrane")


def test_same_pooling_scale_is_tensorflows_border_average():
    """The Scale after SumPool2d: 1 / (window elements inside the image), from TF's own
    average of ones."""
    import tensorflow as tf
    from tandem_keras import _nir_nodes

    layer = keras.layers.AveragePooling2D(3, 2, padding="same")
    nodes, why = _nir_nodes.pooling(nir, layer, (9, 7), 2)
    assert why is None
    x = np.random.default_rng(0).uniform(0, 1, (3, 9, 7, 2)).astype("float32")
    summed = _nir_numpy.sum_pool2d(np.transpose(x, (0, 3, 1, 2)), nodes[0][1]) * nodes[1][1].scale
    expected = tf.nn.avg_pool2d(x, 3, 2, "SAME").numpy()
    np.testing.assert_allclose(np.transpose(summed, (0, 2, 3, 1)), expected, rtol=1e-6)
    assert _nir_nodes.pooling(nir, keras.layers.AveragePooling2D(3, 2, padding="same"), (8, 8), 2)[1]


@pytest.mark.parametrize("case,culprit", [
    ("pool", "pool"), ("mode", "tandem_conv1"), ("no_encoder", "no_encoder"), ("relu", "head"),
    ("subclass", "special"), ("concat", "cat"), ("asymmetric", "avg")])
def test_unexportable_layer_is_named(case, culprit):
    L = keras.layers
    if case == "pool":
        model = keras.Sequential([keras.Input((8, 8, 1)), tk.SpikeEncoder(2),
                                  keras.layers.TimeDistributed(keras.layers.MaxPooling2D(), name="pool")])
    elif case == "concat":
        inp = keras.Input((4,))
        s = tk.SpikeEncoder(2)(inp)
        model = keras.Model(inp, L.Concatenate(name="cat")([tk.TandemDense(2)(s), tk.TandemDense(3)(s)]))
    elif case == "asymmetric":  # 8 -> 4 with a 3x3 window: TF pads 0 before, 1 after
        model = keras.Sequential([keras.Input((8, 8, 1)), tk.SpikeEncoder(2), tk.SpikeCount(),
                                  L.AveragePooling2D(3, 2, padding="same", name="avg")])
    elif case == "mode":
        model = models.digits(time_steps=2, mode="quantized")
    elif case == "no_encoder":
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="no_encoder")
    elif case == "subclass":  # e.g. an output layer whose logits are not its spike counts
        special = type("SpecialDense", (tk.TandemDense,),
                       {"call": lambda self, x, training=None: 2.0 * tk.TandemDense.call(self, x, training)})
        model = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2), special(3, name="special")])
    else:
        model = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2), tk.TandemDense(3), tk.SpikeCount(),
                                  keras.layers.Dense(2, activation="relu", name="head")])
    with pytest.raises(ValueError, match=f"'{culprit}'") as error:
        tk.export_nir(model)
    assert "\n" not in str(error.value)


def _encoder_front(shape, t=4, channels=8):
    L = keras.layers
    inp = keras.Input(shape)
    x = L.BatchNormalization()(L.Conv2D(channels, 3, padding="same")(inp))
    return inp, tk.SpikeEncoder(t, name="encoder")(x)


def test_residual_blocks_spikes_bit_for_bit(tmp_path):
    """An identity block and a projection block (1x1 stride-2 synapse-only shortcut, scales):
    TandemAdd is one IF node with an edge from each input, the synapse-only convs are Conv2d
    nodes without neurons."""
    keras.utils.set_random_seed(9)
    inp, s = _encoder_front((8, 8, 2))
    x = tk.TandemConv2D(8, 3, name="stem")(s)
    y = tk.TandemConv2D(8, 3, name="b1_conv1")(x)
    y = tk.TandemConv2D(8, 3, neuron=None, name="b1_conv2")(y)
    x = tk.TandemAdd(name="b1_add")([y, x])
    y = tk.TandemConv2D(8, 3, strides=2, name="b2_conv1")(x)
    y = tk.TandemConv2D(8, 3, neuron=None, name="b2_conv2")(y)
    p = tk.TandemConv2D(8, 1, strides=2, neuron=None, name="b2_proj")(x)
    x = tk.TandemAdd(scales=[1.0, 0.75], name="b2_add")([y, p])
    x = tk.GlobalAveragePooling2D(name="gap")(x)
    out = tk.SpikeCount()(tk.TandemDense(5, batch_norm=False, name="out")(x))
    model = keras.Model(inp, out)
    images = np.random.default_rng(3).uniform(0, 3, (64, 8, 8, 2)).astype("float32")
    _fit_briefly(model, images, np.arange(64) % 5, liven=True)
    graph = tk.export_nir(model)
    into = lambda name: sorted(a for a, b in graph.edges if b == name)  # noqa: E731
    assert into("b1_add_if") == ["b1_conv2", "stem_if"]
    assert into("b2_add_if") == ["b2_add_scale1", "b2_conv2"] and into("b2_add_scale1") == ["b2_proj"]
    assert "b2_proj_if" not in graph.nodes and type(graph.nodes["gap"]).__name__ == "AvgPool2d"
    _check_exact(model, images, tmp_path, "spike_count", min_spikes=10)


def test_average_pooling_on_spike_trains_bit_for_bit(tmp_path):
    keras.utils.set_random_seed(10)
    inp, s = _encoder_front((9, 9, 2))
    s = tk.TandemConv2D(8, 3, name="c1")(s)
    s = tk.AveragePooling2D(3, 2, padding="same", name="pool1")(s)     # 9 -> 5, TF pads 1/1
    s = tk.TandemConv2D(8, 3, name="c2")(s)
    s = tk.AveragePooling2D(2, name="pool2")(s)                        # 5 -> 2, 'valid'
    s = tk.TandemConv2D(8, 1, name="c3")(s)
    s = tk.TandemDense(12, name="d")(tk.TimeFlatten()(s))
    out = keras.layers.Dense(4, name="logits")(tk.SpikeCount()(s))
    model = keras.Model(inp, out)
    images = np.random.default_rng(4).uniform(0, 3, (64, 9, 9, 2)).astype("float32")
    _fit_briefly(model, images, np.arange(64) % 4, liven=True)
    graph = tk.export_nir(model)
    kinds = [type(graph.nodes[n]).__name__ for n in ("pool1", "pool1_scale", "pool2")]
    assert kinds == ["SumPool2d", "Scale", "AvgPool2d"]
    _check_exact(model, images, tmp_path, "membrane")


def test_lif_and_initial_potential(tmp_path):
    """LIF as nir.LIF with tau = 1/(1-beta) time steps, r = tau; the initial potential in the
    node's metadata. Dyadic weights (multiples of 1/8, no BN, T = 4, beta = 0.75 and 0.5):
    every sum is exact in float32, so the Euler step of NIR's equation and the layer's
    beta V + z agree bit for bit."""
    keras.utils.set_random_seed(11)
    inp = keras.Input((6, 6, 1))
    s = tk.SpikeEncoder(4, name="encoder")(inp)
    a = tk.TandemConv2D(6, 3, batch_norm=False, neuron=tk.neurons.LIF(beta=0.75), name="a")(s)
    b = tk.TandemConv2D(6, 3, batch_norm=False, neuron=tk.neurons.IF(initial_potential=0.5),
                        threshold=1.5, name="b")(a)
    c = tk.TandemConv2D(6, 3, batch_norm=False, neuron=None, name="c")(b)
    z = tk.TandemAdd(neuron=tk.neurons.LIF(beta=0.5, initial_potential=0.25), name="z")([c, b])
    model = keras.Model(inp, tk.SpikeCount()(z))
    rng = np.random.default_rng(6)
    for name in ("a", "b", "c"):
        layer = model.get_layer(name)
        layer.set_weights([rng.integers(-3, 6, w.shape).astype("float32") / 8 for w in layer.get_weights()])
    graph = tk.export_nir(model)
    lif, initial = graph.nodes["a_if"], graph.nodes["b_if"]
    assert isinstance(lif, nir.LIF) and lif.metadata["tau_unit"] == "time step"
    np.testing.assert_array_equal(lif.tau, 4.0)
    np.testing.assert_array_equal(lif.r, 4.0)
    np.testing.assert_array_equal(lif.v_leak, 0.0)
    assert isinstance(initial, nir.IF) and initial.metadata["v_initial"] == 0.75
    assert graph.nodes["z_if"].metadata["v_initial"] == 0.25 and float(graph.nodes["z_if"].tau[0, 0, 0]) == 2.0
    images = rng.integers(0, 5, (48, 6, 6, 1)).astype("float32")
    _check_exact(model, images, tmp_path, "spike_count", min_spikes=10)


def test_rounding_current_exports_as_a_bias(tmp_path):
    """``rounding`` above ``initial_potential``: the constant current ``(r - v0) theta / T``
    in the tandem layer's per-step bias and, for a ``TandemAdd``, a zero-weight synapse of
    that bias. Dyadic values (T = 4, theta 1 and 2, r - v0 = 1/4): exact in float32."""
    keras.utils.set_random_seed(12)
    split = tk.neurons.IF(initial_potential=0.25, rounding=0.5)
    inp = keras.Input((6, 6, 1))
    s = tk.SpikeEncoder(4, neuron=split, name="encoder")(inp)
    a = tk.TandemConv2D(6, 3, batch_norm=False, neuron=split, name="a")(s)
    c = tk.TandemConv2D(6, 3, padding="same", batch_norm=False, neuron=None, name="c")(a)
    z = tk.TandemAdd(neuron=split, threshold=2.0, name="z")([c, a])
    model = keras.Model(inp, tk.SpikeCount()(z))
    rng = np.random.default_rng(7)
    for name in ("a", "c"):
        layer = model.get_layer(name)
        layer.set_weights([rng.integers(-3, 6, w.shape).astype("float32") / 8 for w in layer.get_weights()])
    graph = tk.export_nir(model)
    bias = np.asarray(graph.nodes["a"].bias)
    np.testing.assert_array_equal(bias, np.asarray(model.get_layer("a").bias) / 4 + 0.25 / 4)
    np.testing.assert_array_equal(graph.nodes["z_rounding"].bias, 0.25 * 2.0 / 4)
    np.testing.assert_array_equal(graph.nodes["z_rounding"].weight, 0.0)
    images = rng.integers(0, 5, (48, 6, 6, 1)).astype("float32")
    _check_exact(model, images, tmp_path, "spike_count", min_spikes=10)


def test_max_pooling_on_spike_trains_is_refused_in_one_line():
    model = keras.Sequential([keras.Input((8, 8, 1)), tk.SpikeEncoder(2), tk.TandemConv2D(2, 3),
                              tk.MaxPooling2D(name="maxpool")])
    with pytest.raises(ValueError, match="'maxpool'.*no max-pooling node") as error:
        tk.export_nir(model)
    assert "\n" not in str(error.value)


@pytest.mark.slow  # about 30 s each; the small residual and pooling graphs above are the fast path
@pytest.mark.parametrize("name,divisor", [("resnet20", 4), ("vgg11", 8)])
def test_resnet20_and_vgg11_spikes_bit_for_bit(name, divisor, tmp_path):
    """The registered builders (small width, T=4), briefly trained and livened: every layer
    with neurons (the residual neurons included) spikes as the NumPy interpreter of the NIR
    graph does, and the logits agree."""
    keras.utils.set_random_seed(13)
    model = models.build(name, time_steps=4, width_divisor=divisor)
    images = np.random.default_rng(7).uniform(0, 255, (48, 32, 32, 3)).astype("float32")
    _fit_briefly(model, images, np.arange(48) % 10, liven=True)
    _check_exact(model, images[:32], tmp_path, "membrane", min_spikes=10)
