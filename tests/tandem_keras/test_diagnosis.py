"""tk.diagnosis.diagnose against hand-computed values and NumPy references of the SNN."""
import keras
import numpy as np
import pytest

import tandem_keras as tk
from tests.tandem_keras.test_analysis import X
from tests.tandem_keras.test_analysis import _model as _hand_model
from tests.tandem_keras.test_neurons_reference import encode_np, front_loaded_np, neuron_np

# The hand-set network of test_analysis (V(0) = 0, T = 3; encoder trains t0 [1,0,1,1],
# t1 [1,0,0,1], t2 [0,0,0,1]):
# hidden:  z0 = .5,.5,0 -> 1 spike; z1 = 1.4,.4,.4 -> 2; z2 = 1.1,-.4,-.4 -> 1 (fired early)
#          c = [1, 2, 1]; V_f = [1.0, 2.2, 0.3]: q = [1, 2, 0]; quantized ANN Q = [1, 2, 0].
# hidden2: SNN inputs n0 @t1, n1 @t0,t2, n2 @t0: c = [1, 0, 1]; V_f = [1, .5, 1]: q = [1, 0, 1];
#          quantized ANN from [1, 2, 0]: V_f = [0, .5, 1]: Q = [0, 0, 1].


def test_hand_computed_rows():
    d = tk.diagnosis.diagnose(_hand_model(), X)
    rows = {r["name"]: r for r in d.layers}
    assert list(rows) == ["enc", "hidden", "hidden2"]
    assert rows["enc"]["added"] == 0.0 and rows["enc"]["kind"] == "encoder"
    h, h2 = rows["hidden"], rows["hidden2"]
    assert h["added"] == pytest.approx(1 / 3) and h["more"] == pytest.approx(1 / 3) and h["fewer"] == 0.0
    assert h["inherited"] == 0.0 and h["total"] == pytest.approx(1 / 3)
    assert h["rate"] == pytest.approx(4 / 9)
    assert h["abs_c_minus_a"] == pytest.approx((0.0 + 0.2 + 0.7) / 3)
    assert h2["added"] == 0.0 and h2["inherited"] == pytest.approx(1 / 3)
    assert h2["total"] == pytest.approx(1 / 3)
    assert h2["silent"] == pytest.approx(1 / 3) and h2["saturated"] == 0.0
    assert d.prefix_errors == [] and d.errors == {}
    assert "hidden2" in d.table()


def _residual_model(v0: float):
    """encoder -> dense (BN, neurons) -> dense (synapse-only) + identity shortcut -> TandemAdd."""
    neuron = tk.neurons.IF(initial_potential=v0)
    x = keras.Input((6,))
    s = tk.SpikeEncoder(4, neuron=neuron, name="enc")(x)
    h = tk.TandemDense(6, neuron=neuron, name="conv1")(s)
    h = tk.TandemDense(6, neuron=None, name="conv2")(h)
    out = tk.TandemAdd(neuron=neuron, scales=[1.0, 0.8], name="add")([h, s])
    logits = keras.layers.Dense(3, name="out")(tk.SpikeCount()(out))
    m = keras.Model(x, logits)
    rng = np.random.default_rng(1)
    for name in ("conv1", "conv2"):
        layer = m.get_layer(name)
        layer.set_weights([rng.normal(0, 0.6, w.shape).astype("float32") if w.ndim == 2 else
                           rng.uniform(0.5, 1.5, w.shape).astype("float32") if "var" in v.path
                           else rng.normal(0, 0.3, w.shape).astype("float32")
                           for w, v in zip(layer.get_weights(), layer.weights)])
    return m


@pytest.mark.parametrize("v0", [0.0, 0.5])
def test_residual_rows_equal_a_numpy_reference(v0):
    m = _residual_model(v0)
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 5, (64, 6)).astype("float32")
    y = rng.integers(0, 3, 64)
    d = tk.diagnosis.diagnose(m, x, y, batch_size=16)
    rows = {r["name"]: r for r in d.layers}

    def folded(name):
        kernel, bias = m.get_layer(name).folded_weights()
        return np.asarray(kernel, np.float64), np.asarray(bias, np.float64)

    T = 4
    s = encode_np(x, T, v0=v0)                                   # [N, T, 6]
    k1, b1 = folded("conv1")
    c1_spikes, _ = neuron_np(s @ k1 + b1 / T, 1.0, v0=v0)
    k2, b2 = folded("conv2")
    z2 = c1_spikes @ k2 + b2 / T
    add_spikes, _ = neuron_np(z2 + 0.8 * s, 1.0, v0=v0)
    c1, c_add = c1_spikes.sum(1), add_spikes.sum(1)
    q1 = np.clip(np.floor(s.sum(1) @ k1 + b1 + v0), 0, T)
    v_add = z2.sum(1) + 0.8 * s.sum(1)
    q_add = np.clip(np.floor(v_add + v0), 0, T)
    # The quantized ANN: every layer fed by the quantized ANN's own previous layer.
    big_q1 = q1   # conv1 reads the encoder's counts, the same in both networks
    big_v2 = front_loaded_np(big_q1, T).sum(1) @ k2 + b2
    big_q_add = np.clip(np.floor(big_v2 + 0.8 * s.sum(1) + v0), 0, T)

    assert rows["conv1"]["added"] == pytest.approx(np.mean(np.abs(c1 - q1)), abs=1e-6)
    assert rows["conv1"]["more"] == pytest.approx(np.mean(c1 > q1), abs=1e-6)
    assert rows["conv1"]["fewer"] == pytest.approx(np.mean(c1 < q1), abs=1e-6)
    assert rows["add"]["added"] == pytest.approx(np.mean(np.abs(c_add - q_add)), abs=1e-6)
    assert rows["add"]["inherited"] == pytest.approx(np.mean(np.abs(q_add - big_q_add)), abs=1e-6)
    assert rows["add"]["total"] == pytest.approx(np.mean(np.abs(c_add - big_q_add)), abs=1e-6)
    assert rows["add"]["rate"] == pytest.approx(np.mean(c_add) / T, abs=1e-6)
    assert rows["add"]["saturated"] == pytest.approx(np.mean(c_add == T), abs=1e-6)
    branch, shortcut = rows["add"]["inputs"]
    magnitudes = [np.mean(np.abs(z2.sum(1))), np.mean(np.abs(0.8 * s.sum(1)))]
    assert branch["source"] == "conv2" and shortcut["source"] == "enc"
    assert branch["share"] == pytest.approx(magnitudes[0] / sum(magnitudes), abs=1e-5)
    assert shortcut["deviation"] == 0.0   # the encoder's spikes are the same in both networks
    assert branch["deviation"] == pytest.approx(
        np.mean(np.abs(z2.sum(1) - big_v2)) / np.mean(np.abs(big_v2)), abs=1e-5)

    # Errors: k = 0 is the quantized ANN, k = L the SNN; both computed here independently.
    def error(model):
        return float(np.mean(np.argmax(np.asarray(model.predict(x, verbose=0)), -1) != y))

    snn, quantized = tk.with_mode(m, "tandem"), tk.with_mode(m, "quantized")
    assert d.errors["snn"] == pytest.approx(error(snn))
    assert d.errors["quantized"] == pytest.approx(error(quantized))
    assert [k for k, _, _ in d.prefix_errors] == [0, 1, 2, 3]
    assert d.prefix_errors[0][2] == pytest.approx(error(quantized))
    assert d.prefix_errors[-1][2] == pytest.approx(error(snn))
    assert [name for _, name, _ in d.prefix_errors] == [None, "enc", "conv1", "add"]


def test_refuses_a_model_without_spiking_layers():
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no spiking layer"):
        tk.diagnosis.diagnose(m, np.zeros((2, 3), "float32"))
