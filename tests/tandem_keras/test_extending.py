"""docs/extending.md's three examples, as a user writes them: a neuron, a linear layer and a
merge, each defined (and registered) once and then working in every tool: training, the
build-time checks, SynOps, serialization, tk.convert and NIR (or a one-line refusal where
NIR has no node). References: float64 NumPy (test_neurons_reference), SynOps by brute force
(tests/tandem_keras/test_synops_ops.py), the NumPy NIR interpreter.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk
from tests.tandem_keras.test_neurons_reference import assert_spikes_match

L = keras.layers


# ----------------------------------------------------------------------------- a neuron
@keras.saving.register_keras_serializable(package="my_neurons")
class FloorIF(tk.neurons.Neuron):
    """IF whose potential never falls below ``v_min``: ``V(t) = max(V(t-1) + z(t), v_min)``."""

    def __init__(self, v_min: float = -1.0, initial_potential: float = 0.0) -> None:
        super().__init__(initial_potential)
        self.v_min = float(v_min)

    def step(self, potential, current):
        return tf.maximum(potential + current, self.v_min)

    def get_config(self) -> dict:
        return {"v_min": self.v_min, **super().get_config()}


def floor_if_np(z, theta, v_min):
    """V(t) = max(V(t-1) - theta s(t-1) + z(t), v_min), s(t) = [V(t) >= theta]; (spikes, margin)."""
    v = np.zeros(z.shape[:1] + z.shape[2:])
    s = np.zeros_like(v)
    spikes, margin = np.zeros_like(z), np.full(v.shape, np.inf)
    for t in range(z.shape[1]):
        v = np.maximum(v - theta * s + z[:, t], v_min)
        margin = np.minimum(margin, np.abs(v - theta))
        s = (v >= theta).astype(np.float64)
        spikes[:, t] = s
    return spikes, margin


def test_a_new_neuron_in_a_tandem_layer(tmp_path):
    rng = np.random.default_rng(0)
    layer = tk.TandemDense(6, neuron=FloorIF(v_min=-0.3), batch_norm=False, name="fc")
    x = (rng.random((5, 8, 4)) < 0.5).astype(np.float32)
    layer(x)
    kernel = rng.normal(0, 0.8, (4, 6)).astype(np.float32)
    bias = rng.normal(0.3, 0.5, 6).astype(np.float32)
    layer.set_weights([kernel, bias])
    z = x.astype(np.float64) @ kernel.astype(np.float64) + bias.astype(np.float64) / 8
    expected, margin = floor_if_np(z, 1.0, -0.3)
    assert_spikes_match(np.asarray(layer(x)), expected, margin)
    assert not np.array_equal(expected, floor_if_np(z, 1.0, -np.inf)[0])   # the floor matters
    model = keras.Sequential([keras.Input((8, 4)), layer, tk.SpikeCount()])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("fc").neuron == FloorIF(v_min=-0.3)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_neuron_without_a_nir_node_is_refused_naming_it():
    pytest.importorskip("nir")
    model = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2, name="encoder"),
                              tk.TandemDense(3, neuron=FloorIF(), name="fc"), tk.SpikeCount()])
    with pytest.raises(ValueError, match=r"'fc' \(TandemDense\): NIR has no node for the neuron FloorIF"):
        tk.export_nir(model)


# ----------------------------------------------------------------------------- a linear layer
@keras.saving.register_keras_serializable(package="my_layers")
class TandemConv3D(tk.TandemLayer, keras.layers.Conv3D):
    """3-D convolutional tandem layer: ``[batch, T, D, H, W, C]`` -> ``[batch, T, D', H', W', F]``."""


def conv3d_np(x, kernel):
    """'same' padding, stride 1, odd kernel: [N, D, H, W, C] -> [N, D, H, W, F]."""
    k = kernel.shape[:3]
    pad = [(0, 0)] + [(s // 2, s // 2) for s in k] + [(0, 0)]
    xp = np.pad(np.asarray(x, np.float64), pad)
    out = np.zeros(x.shape[:4] + (kernel.shape[-1],))
    for a in range(k[0]):
        for b in range(k[1]):
            for c in range(k[2]):
                out += xp[:, a:a + x.shape[1], b:b + x.shape[2], c:c + x.shape[3]] @ kernel[a, b, c]
    return out


def test_a_new_linear_layer_forward_synops_and_conversion():
    from tests.tandem_keras.test_neurons_reference import neuron_np

    rng = np.random.default_rng(1)
    inp = keras.Input((4, 5, 5, 2))
    s = tk.SpikeEncoder(3, name="encoder")(inp)
    h = TandemConv3D(3, 3, name="conv3d")(s)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(tk.SpikeCount()(h))))
    x = rng.uniform(0, 3, (6, 4, 5, 5, 2)).astype(np.float32)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, np.arange(6) % 2, epochs=1, verbose=0)
    layer = model.get_layer("conv3d")
    layer.beta.assign(layer.beta + 0.6)
    enc, out = (np.asarray(a) for a in keras.Model(inp, [s, h]).predict(x, verbose=0))
    kernel, bias = (np.asarray(w, np.float64) for w in layer.folded_weights())
    z = conv3d_np(enc.reshape((-1,) + enc.shape[2:]), kernel) + bias / 3
    expected, margin = neuron_np(z.reshape(enc.shape[:2] + z.shape[1:]), 1.0)
    assert_spikes_match(out, expected, margin)
    # SynOps: the encoder's spikes reach 3 filters at every position of a 3x3x3 window that
    # holds them ('same': 2 positions per axis at a border, 3 inside)
    cover = [np.array([2] + [3] * (n - 2) + [2]) for n in (4, 5, 5)]
    fanout = 3 * np.einsum("i,j,k->ijk", *cover)[..., None] * np.ones(2)
    report = tk.count_synops(model, x)
    assert report["layers"][0]["synops"] == pytest.approx((enc.sum(axis=1) * fanout).sum() / 6)
    # a Keras Conv3D ANN converts to it (its Keras class is Conv3D)
    ann = keras.Sequential([keras.Input((4, 5, 5, 2)), L.Conv3D(3, 3, padding="same", activation="relu"),
                            L.Conv3D(4, 3, padding="same", activation="relu"), L.Flatten(), L.Dense(2)])
    snn = tk.convert(ann, time_steps=3, calibration_data=x)
    assert isinstance(snn.layers[3], TandemConv3D)
    np.testing.assert_allclose(tk.with_mode(snn, "ann")(x), ann(x), rtol=1e-4, atol=1e-4)
    pytest.importorskip("nir")
    with pytest.raises(ValueError, match=r"'conv3d' \(TandemConv3D\): NIR export has no synapse node"):
        tk.export_nir(model)


# ----------------------------------------------------------------------------- a merge
class SpikeAverage(L.Average):
    """The average of spike trains (or currents): an exact input current of the next
    weighted layer, ``W (x_1 + x_2) / 2``."""


def _average_nir(builder, layer, ports, out_shape):
    sources = []
    for i, p in enumerate(ports):   # a Scale node 1/n per input, their sum the node's input
        scale = np.full(tuple(tk.nir.channels_first(p.shape)), 1.0 / len(ports), np.float32)
        sources.append(builder.add(f"{layer.name}_scale{i}", builder.nir.Scale(scale=scale), p.sources))
    return tk.nir.port(tuple(sources), ports[0].shape)


tk.register_layer(SpikeAverage, "linear", merge=tk.synops.layer_specs.sum_merge, nir=_average_nir,
                  carries=lambda layer, inputs: tk.kinds.Carry("current") if all(
                      c.what in tk.kinds.TRAINS for c in inputs) else tk.kinds.join(inputs))


def test_a_new_merge_through_every_tool(tmp_path):
    keras.utils.set_random_seed(3)
    inp = keras.Input((6, 6, 2))
    s = tk.SpikeEncoder(4, name="encoder")(L.Conv2D(3, 3, padding="same", name="encoder_conv")(inp))
    a = tk.TandemConv2D(4, 3, name="a")(s)
    b = tk.TandemConv2D(4, 1, name="b")(s)
    with pytest.raises(ValueError, match="'plain' \\(Average\\)"):        # Keras's own: refused
        tk.TandemConv2D(5, 3)(L.Average(name="plain")([a, b]))
    h = tk.TandemConv2D(5, 3, name="after")(SpikeAverage(name="average")([a, b]))
    model = keras.Model(inp, L.Dense(2, name="logits")(L.Flatten()(tk.SpikeCount()(h))))
    x = np.random.default_rng(3).uniform(0, 3, (48, 6, 6, 2)).astype(np.float32)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, np.arange(48) % 2, epochs=1, verbose=0)
    for name in ("a", "b", "after"):
        model.get_layer(name).beta.assign(model.get_layer(name).beta + 0.6)
    from tests.tandem_keras.test_neurons_reference import conv2d_np, neuron_np

    a_s, b_s, out = (np.asarray(v) for v in keras.Model(inp, [a, b, h]).predict(x, verbose=0))
    layer = model.get_layer("after")
    kernel, bias = (np.asarray(w, np.float64) for w in layer.folded_weights())
    current = ((a_s + b_s) / 2).reshape((-1, 6, 6, 4))
    z = conv2d_np(current, kernel, 1, "same") + bias / 4
    expected, margin = neuron_np(z.reshape((48, 4, 6, 6, 5)), 1.0)
    assert_spikes_match(out, expected, margin)
    # SynOps: a's and b's spikes each reach the 3x3 'same' window of 'after' (an identity merge)
    cover = np.array([2, 3, 3, 3, 3, 2])
    fan = np.outer(cover, cover)[..., None] * 5
    rows = {r["name"]: r for r in tk.count_synops(model, x)["layers"]}
    assert rows["a"]["synops"] == pytest.approx((a_s.sum(axis=1) * fan).sum() / 48)
    assert rows["b"]["synops"] == pytest.approx((b_s.sum(axis=1) * fan).sum() / 48)
    pytest.importorskip("nir")
    from tests.tandem_keras.test_nir import _check_exact

    _check_exact(model, x, tmp_path, "membrane")
