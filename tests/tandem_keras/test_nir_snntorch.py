"""Third-party check: the exported NIR file, imported into snnTorch, is the Keras SNN.

snnTorch 1.0.0's ``import_from_nir`` (with nirtorch 2.6, torch 2.13 CPU; the ``nir-test``
extra) maps ``nir.IF`` to ``Leaky(beta=0.9, reset_delay=False, init_hidden=False)`` and
``nir.Flatten(start_dim=0)`` to ``torch.nn.Flatten(0)``. The corrections below are the
ones the README's "Deploy" section tells a user to make, and nothing else:

1. every ``Leaky`` -> ``Leaky(beta=1.0, threshold=<same>, init_hidden=True)``: no leak,
   reset by subtraction of the previous step's spike (``reset_delay=True``, the default),
   i.e. ``V(t) = V(t-1) + z(t) - theta s(t-1)``; ``init_hidden`` so that it returns spikes;
2. every ``Flatten`` -> ``torch.nn.Flatten(1)`` (keep the batch axis);
3. logits = the network's output summed over the T steps.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch (CPU) is not installed: pip install '.[nir-test]'")
snn = pytest.importorskip("snntorch", reason="snnTorch is not installed: pip install '.[nir-test]'")
pytest.importorskip("nirtorch", reason="nirtorch is not installed: pip install '.[nir-test]'")
nir = pytest.importorskip("nir")

import snntorch.utils  # noqa: E402
from snntorch.import_nir import import_from_nir  # noqa: E402

import models  # noqa: E402
import tandem_keras as tk  # noqa: E402


def apply_documented_corrections(net: torch.nn.Module) -> torch.nn.Module:
    for name, module in list(net.named_children()):
        if isinstance(module, snn.Leaky):
            setattr(net, name, snn.Leaky(beta=1.0, threshold=float(module.threshold), init_hidden=True))
        elif isinstance(module, torch.nn.Flatten):
            setattr(net, name, torch.nn.Flatten(1))
    return net


def test_snntorch_import_matches_keras_spikes_and_predictions(tmp_path):
    from sklearn.datasets import load_digits

    assert snn.__version__ == "1.0.0" and nir.__version__ == "1.0.8"
    keras.utils.set_random_seed(11)
    x, y = load_digits(return_X_y=True)
    x = (x.reshape(-1, 8, 8, 1) * (255.0 / 16.0)).astype("float32")
    model = models.digits(time_steps=4, neuron="if")   # snnTorch starts every neuron at 0
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:1437], y[:1437], batch_size=32, epochs=1, verbose=0)
    test_x, test_y = x[1437:], y[1437:]
    assert len(test_x) == 360

    tk.export_nir(model, tmp_path / "digits.nir")
    net = apply_documented_corrections(import_from_nir(nir.read(str(tmp_path / "digits.nir"))))
    recorded: dict[str, list] = {}
    for name, module in net.named_children():
        if isinstance(module, snn.Leaky):
            module.register_forward_hook(
                lambda m, i, out, name=name: recorded.setdefault(name, []).append(out.numpy().copy()))

    frames = tk.encode_for_nir(model, test_x)  # [T, 360, 32, 8, 8]
    snntorch.utils.reset(net)
    with torch.no_grad():
        outputs = [net(torch.from_numpy(frame))[0].numpy() for frame in frames]
    logits = np.sum(outputs, axis=0)

    names = ["tandem_conv1", "tandem_dense1"]
    keras_spikes = keras.Model(model.inputs, [model.get_layer(n).output for n in names]).predict(test_x, verbose=0)
    for name, spikes in zip(names, keras_spikes):
        spikes = np.moveaxis(spikes, 1, 0)
        if spikes.ndim == 5:
            spikes = np.moveaxis(spikes, -1, 2)  # NHWC -> NCHW
        theirs = np.stack(recorded[name + "_if"])
        assert spikes.sum() > 1000
        assert theirs.shape == spikes.shape
        assert int(np.sum(theirs != spikes)) == 0, f"{name}: {int(np.sum(theirs != spikes))} spikes differ"
    expected = model.predict(test_x, verbose=0)
    np.testing.assert_array_equal(logits.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-4)
    assert (expected.argmax(1) == test_y).mean() > 0.8  # a trained model, not a trivial one


@pytest.mark.slow
def test_snntorch_runs_a_residual_block_with_pooling(tmp_path):
    """A residual block (two edges into one IF node: nirtorch adds them) and 'valid' average
    pooling of the sum, with the same two corrections: snnTorch's spikes are the Keras model's."""
    keras.utils.set_random_seed(12)
    L = keras.layers
    inp = keras.Input((8, 8, 2))
    s = tk.SpikeEncoder(4, name="encoder")(L.BatchNormalization()(L.Conv2D(6, 3, padding="same")(inp)))
    x = tk.TandemConv2D(6, 3, name="stem")(s)
    y = tk.TandemConv2D(6, 3, name="b1")(x)
    y = tk.TandemConv2D(6, 3, neuron=None, name="b2")(y)
    z = tk.TandemAdd(name="add")([y, x])
    z = tk.TandemDense(10, name="fc")(tk.TimeFlatten()(tk.TandemConv2D(6, 1, name="c")(tk.AveragePooling2D(2)(z))))
    model = keras.Model(inp, L.Dense(3, name="logits")(tk.SpikeCount()(z)))
    images = np.random.default_rng(0).uniform(0, 3, (48, 8, 8, 2)).astype("float32")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, np.arange(48) % 3, batch_size=16, epochs=1, verbose=0)
    for layer in model.layers:  # spike at a meaningful rate
        if isinstance(layer, tk.TandemLayer) and layer.batch_norm:
            layer.beta.assign(layer.beta + 0.5)

    tk.export_nir(model, tmp_path / "residual.nir")
    net = apply_documented_corrections(import_from_nir(nir.read(str(tmp_path / "residual.nir"))))
    recorded: dict[str, list] = {}
    for name, module in net.named_children():
        if isinstance(module, snn.Leaky):
            module.register_forward_hook(
                lambda m, i, out, name=name: recorded.setdefault(name, []).append(out.numpy().copy()))
    snntorch.utils.reset(net)
    with torch.no_grad():
        logits = sum(net(torch.from_numpy(frame))[0].numpy() for frame in tk.encode_for_nir(model, images))
    names = ["stem", "b1", "add", "c", "fc"]
    for name, spikes in zip(names, keras.Model(model.inputs, [model.get_layer(n).output for n in names])(images)):
        spikes = np.moveaxis(np.asarray(spikes), 1, 0)
        if spikes.ndim == 5:
            spikes = np.moveaxis(spikes, -1, 2)
        theirs = np.stack(recorded[name + "_if"])
        assert spikes.sum() > 20, name
        assert int(np.sum(theirs != spikes)) == 0, f"{name}: {int(np.sum(theirs != spikes))} spikes differ"
    np.testing.assert_allclose(logits, model.predict(images, verbose=0), rtol=1e-5, atol=1e-4)
