"""The registry of layer kinds as SynOps reads it: users' own layers and devices in
count_synops, tk.summary, ActivityLogger's Keras logs, and python -m eval's table; the
private-Keras module."""
import csv
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tandem_keras as tk
from tandem_keras import kinds
from tandem_keras.synops import layer_specs
from tandem_keras._keras_internals import all_layers, call_nodes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class MyReadout(keras.layers.Layer):
    """A user's own dense readout (not a keras Dense subclass)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")

    def call(self, x):
        return keras.ops.matmul(x, self.kernel)


class MyIF(keras.layers.Layer):
    """A user's own spiking layer: spikes where the input train is above 0.5 (no weights)."""

    def call(self, x):
        return keras.ops.cast(x > 0.5, x.dtype)


class MyPass(keras.layers.Layer):
    def call(self, x):
        return x


tk.register_layer(MyReadout, "weighted", lambda layer, shape: layer_specs.dense_spec(layer, shape))
tk.register_layer(MyIF, "spiking")
tk.register_layer(MyPass, "transparent")


def _model(input_shape=(6,), classes=4):
    return keras.Sequential([
        keras.Input(input_shape), keras.layers.Flatten(),
        tk.SpikeEncoder(3, name="enc"),
        tk.TandemDense(5, batch_norm=False, name="fc"),
        MyIF(name="my_if"), MyPass(name="pass"), tk.SpikeCount(name="count"),
        MyReadout(classes, name="my_readout"),
    ])


def _counts(model, x):
    act = tk.synops.activity_model(model)(x, training=False)
    return {k: np.asarray(v) for k, v in act.items()}


def test_user_layers_counted_like_the_equations():
    model = _model()
    x = np.random.default_rng(0).uniform(0, 4, (7, 6)).astype("float32")
    report = tk.count_synops(model, x)
    rows = {e["name"]: e for e in report["layers"]}
    assert [e["name"] for e in report["layers"]] == ["enc", "fc", "my_if", "my_readout"]
    assert rows["my_if"]["kind"] == "spiking" and rows["my_readout"]["kind"] == "readout"
    counts = _counts(model, x)
    # Eq. 13: every encoder spike reaches the 5 units of fc; fc's spikes reach nothing
    # weighted directly (MyIF has no synapses); MyIF's spikes reach the 4 readout units.
    assert rows["enc"]["synops"] == pytest.approx(counts["enc"].sum() * 5 / 7)
    assert rows["fc"]["synops"] == 0
    assert rows["my_if"]["synops"] == pytest.approx(counts["my_if"].sum() * 4 / 7)
    assert rows["my_readout"]["ann_macs"] == 5 * 4   # Eq. 14: fan-in 5, 4 neurons
    assert rows["my_if"]["avg_spike_count"] == pytest.approx(counts["my_if"].mean())


def test_unregistered_consumer_of_spikes_names_layer_and_the_fix():
    class Odd(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    model = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2), Odd(name="odd"),
                              tk.SpikeCount(), keras.layers.Dense(2)])
    with pytest.raises(NotImplementedError, match=r"'odd'.*register_layer"):
        tk.describe_model(model)


def test_register_layer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown role 'magic'"):
        tk.register_layer(MyPass, "magic")
    with pytest.raises(ValueError, match="needs a spec function"):
        tk.register_layer(MyPass, "weighted")
    with pytest.raises(ValueError, match="takes no spec"):
        tk.register_layer(MyPass, "transparent", spec=layer_specs.dense_spec)
    with pytest.raises(TypeError, match="must be a class"):
        tk.register_layer(MyPass(), "transparent")


def test_subclass_inherits_role_and_time_distributed_takes_inner_role():
    class MyDense(keras.layers.Dense):
        pass

    assert kinds.role(MyDense(3)) == "weighted"
    assert kinds.role(keras.layers.TimeDistributed(MyDense(3))) == "weighted"
    assert kinds.role(keras.layers.Conv2DTranspose(2, 3)) is None


def test_registered_device_changes_the_energy():
    model = _model()
    x = np.random.default_rng(1).uniform(0, 4, (5, 6)).astype("float32")
    tk.register_device("test_chip", energy_per_ac=2e-12, energy_per_mac=10e-12)
    default = tk.count_synops(model, x)
    chip = tk.count_synops(model, x, device="test_chip")
    assert default["device"] == "horowitz_45nm" and chip["device"] == "test_chip"
    assert default["synops_snn"] == chip["synops_snn"]
    assert default["energy_snn_joules"] == pytest.approx(
        0.9e-12 * default["synops_snn"] + 4.6e-12 * default["encoder_macs"])
    assert chip["energy_snn_joules"] == pytest.approx(
        2e-12 * chip["synops_snn"] + 10e-12 * chip["encoder_macs"])
    assert chip["energy_ann_joules"] == pytest.approx(10e-12 * chip["synops_ann"])
    with pytest.raises(ValueError, match="unknown device 'nope'"):
        tk.count_synops(model, x, device="nope")
    with pytest.raises(ValueError, match="energy_per_ac"):
        tk.register_device("bad", energy_per_ac=float("nan"), energy_per_mac=1.0)


def test_summary_without_and_with_data():
    model = _model()
    lines = []
    description = tk.summary(model, print_fn=lines.append)
    text = lines[0]
    assert description["time_steps"] == 3
    for name in ("enc", "fc", "my_if", "my_readout"):
        assert name in text
    assert "ANN MACs per example: 50" in text           # fc 6*5 + readout 5*4
    x = np.random.default_rng(2).uniform(0, 4, (4, 6)).astype("float32")
    lines.clear()
    report = tk.summary(model, x, print_fn=lines.append, device="horowitz_45nm")
    assert report["synops_snn"] == pytest.approx(tk.count_synops(model, x)["synops_snn"])
    assert "my_if" in lines[0] and "spikes/neuron" in lines[0] and "horowitz_45nm" in lines[0]


def test_activity_logger_writes_keras_logs_for_csv_logger(tmp_path):
    x = np.random.default_rng(3).uniform(0, 4, (32, 6)).astype("float32")
    y = np.random.default_rng(4).integers(0, 4, 32)
    model = _model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logger = tk.ActivityLogger(log_dir=None, data=x[:8])
    path = tmp_path / "history.csv"
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0,
                        callbacks=[logger, keras.callbacks.CSVLogger(str(path))])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and "synops/total_snn" in rows[0] and "spike_count/my_if" in rows[0]
    expected = tk.count_synops(model, x[:8])
    assert float(rows[-1]["synops/total_snn"]) == pytest.approx(expected["synops_snn"], rel=1e-6)
    assert history.history["synops/ratio"][-1] == pytest.approx(expected["synops_ratio"], rel=1e-6)


def test_eval_table_shows_a_registered_user_layer(tmp_path):
    model = _model(input_shape=(8, 8, 1), classes=10)
    export_dir = str(tmp_path / "export")
    tk.export_model(model, export_dir)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-m", "eval", f"--saved_model={export_dir}",
                          "--dataset=digits", "--split=test", "--max_examples=64"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    table = [line.split() for line in out.stdout.splitlines()]
    names = [row[0] for row in table if row and row[0] in ("enc", "fc", "my_if", "my_readout")]
    assert names == ["enc", "fc", "my_if", "my_readout"]


def test_keras_internals_graph_and_layers_on_pinned_keras():
    inputs = keras.Input((4,))
    a = keras.layers.Dense(3, name="a")(inputs)
    b = keras.layers.Dense(3, name="b")(inputs)
    out = keras.layers.Add(name="add")([a, b])
    model = keras.Model(inputs, out)
    nodes, consumers = call_nodes(model)
    order = [n.operation.name for n in nodes]
    assert order.index("add") > max(order.index("a"), order.index("b"))
    assert sorted(n.operation.name for n in consumers[id(inputs)]) == ["a", "b"]

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.inner = keras.Sequential([tk.TandemDense(2, name="deep")])

        def call(self, x):
            return self.inner(x)

    assert "deep" in [layer.name for layer in all_layers(Sub())]
    with pytest.raises(ValueError, match="expected a keras.Model"):
        call_nodes(keras.layers.Dense(2))


class MyAvgPool(keras.layers.Layer):
    """A user's own 2x2 average pooling (not a Keras pooling subclass)."""

    def call(self, x):
        return keras.ops.average_pool(x, 2, 2, padding="valid")


class MyConv(keras.layers.Layer):
    """A user's own 3x3 'same' convolution."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(3, 3, input_shape[-1], self.filters), name="kernel")

    def call(self, x):
        return keras.ops.conv(x, self.kernel, padding="same")


tk.register_layer(MyAvgPool, "linear", lambda layer, shape: {
    "type": "avg_pool2d", "input_shape": list(shape), "pool_size": [2, 2], "strides": [2, 2],
    "padding": "valid"})
tk.register_layer(MyConv, "weighted", lambda layer, shape: {
    "type": "conv2d", "input_shape": list(shape), "filters": layer.filters, "kernel_size": [3, 3],
    "strides": [1, 1], "padding": "same"})


def test_user_linear_and_weighted_layers_in_a_graph():
    """A user's pooling ("linear") folded into a user's convolution ("weighted") after the
    spike counts: fan-out and SynOps from the brute-force composite map, MACs of the conv."""
    from tests.tandem_keras.test_synops_ops import _brute_force

    keras.utils.set_random_seed(7)
    inp = keras.Input((8, 8, 1))
    s = tk.SpikeEncoder(3, name="enc")(inp)
    s = tk.TandemConv2D(4, 3, name="conv")(s)
    x = MyConv(5, name="my_conv")(MyAvgPool(name="my_pool")(tk.SpikeCount()(s)))
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    model.get_layer("conv").beta.assign(np.full(4, 0.5, "float32"))
    rows = {r["name"]: r for r in tk.describe_model(model)["layers"]}
    chain = [{"type": "avg_pool2d", "input_shape": [8, 8, 4], "pool_size": [2, 2], "strides": [2, 2],
              "padding": "valid"},
             {"type": "conv2d", "input_shape": [4, 4, 4], "filters": 5, "kernel_size": [3, 3],
              "strides": [1, 1], "padding": "same"}]
    fan = _brute_force([8, 8, 4], [chain])
    np.testing.assert_array_equal(tk.synops.row_fanout(rows["conv"]), fan)
    assert rows["my_conv"]["kind"] == "readout" and rows["my_conv"]["macs"] == 36 * 4 * 4 * 5
    x = np.random.default_rng(0).uniform(0, 3, (4, 8, 8, 1)).astype("float32")
    counts = np.asarray(keras.Model(inp, model.get_layer("conv").output)(x)).sum(axis=1)
    report = tk.count_synops(model, x)
    assert report["layers"][1]["synops"] == pytest.approx((counts * fan).sum() / 4)
    assert counts.sum() > 0
