"""Fig. 7C representation error and Fig. 9 angle / PCC on hand-set networks."""
import keras
import numpy as np
import pytest

import tandem_keras as tk
from tandem_keras import analysis

X = np.array([[2.0, 0.0, 1.0, 5.0]], "float32")  # T=3 encoder counts [2, 0, 1, 3]
# Encoder trains: t0 [1,0,1,1], t1 [1,0,0,1], t2 [0,0,0,1].
HIDDEN = np.array([[0.5, 0.0, 0.0],
                   [0.0, 0.0, 0.0],
                   [0.0, 1.0, 1.5],
                   [0.0, 0.4, -0.4]], "float32")
# hidden SNN: n0 z=.5,.5,0 -> spike at t1 (1); n1 z=1.4,.4,.4 -> spikes t0, t2 (2);
#   n2 z=1.1,-.4,-.4 -> spike at t0 (1)  (early positive input, Fig. 1)  => c = [1, 2, 1].
# V_f = W^T [2,0,1,3] = [1.0, 2.2, 0.3]: coupled ANN a = [1.0, 2.2, 0.3];
#   quantized ANN floor -> [1, 2, 0].
HIDDEN2 = np.array([[0.0, 0.5, 0.0],
                    [0.0, 0.0, 0.5],
                    [1.0, 0.0, 0.0]], "float32")
# hidden2 SNN (inputs n0 @t1, n1 @t0,t2, n2 @t0): u0 z=1,0,0 -> 1 spike; u1 z=0,.5,0 -> 0;
#   u2 z=.5,0,.5 -> V .5,.5,1.0 -> 1 spike  => c = [1, 0, 1].
#   coupled a from c_in [1,2,1]: V_f = [1, .5, 1.0] -> a = [1, .5, 1].
#   quantized chain from [1,2,0]: V_f = [0, .5, 1.0] -> [0, 0, 1].


def _model():
    m = keras.Sequential([
        keras.Input((4,)),
        tk.SpikeEncoder(3, name="enc"),
        tk.TandemDense(3, batch_norm=False, use_bias=False, name="hidden"),
        tk.TandemDense(3, batch_norm=False, use_bias=False, name="hidden2"),
        tk.SpikeCount(),
        keras.layers.Dense(2, use_bias=False, name="out"),
    ])
    m.get_layer("hidden").set_weights([HIDDEN])
    m.get_layer("hidden2").set_weights([HIDDEN2])
    m.get_layer("out").set_weights([np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 3.0]], "float32")])
    return m


def test_representation_error_hand_computed():
    rows = {r["name"]: r for r in analysis.representation_error(_model(), X)}
    assert rows["enc"]["mean_abs_diff"] == 0.0  # the encoder is exact in both
    assert rows["hidden"]["mean_abs_diff"] == pytest.approx(1 / 3)   # [1,2,1] vs [1,2,0]
    assert rows["hidden"]["mean_diff"] == pytest.approx(1 / 3)
    assert rows["hidden2"]["mean_abs_diff"] == pytest.approx(1 / 3)  # [1,0,1] vs [0,0,1]
    assert rows["hidden2"]["snn_mean"] == pytest.approx(2 / 3)
    assert rows["hidden2"]["ann_mean"] == pytest.approx(1 / 3)


def _angle(u, v):
    return np.degrees(np.arccos(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v)))


def test_direction_preservation_hand_computed():
    result = analysis.direction_preservation(_model(), X)
    h, h2 = result["hidden"], result["hidden2"]
    np.testing.assert_array_equal(h["snn_counts"], [[1, 2, 1]])
    np.testing.assert_allclose(h["ann_counts"], [[1.0, 2.2, 0.3]], rtol=1e-6)
    np.testing.assert_array_equal(h2["snn_counts"], [[1, 0, 1]])
    np.testing.assert_allclose(h2["ann_counts"], [[1.0, 0.5, 1.0]], rtol=1e-6)
    assert h["angle_deg"][0] == pytest.approx(_angle([1, 2, 1], [1, 2.2, 0.3]), rel=1e-5)
    assert h2["angle_deg"][0] == pytest.approx(_angle([1, 0, 1], [1, 0.5, 1]), rel=1e-5)
    # PCC of the next layer's weight-activation products (hand multiplied):
    # hidden -> hidden2: [1,2,1] W2 = [1, .5, 1], [1,2.2,.3] W2 = [.3, .5, 1.1].
    assert h["pcc"][0] == pytest.approx(np.corrcoef([1, .5, 1], [.3, .5, 1.1])[0, 1], rel=1e-5)
    # hidden2 -> out: [1,0,1] W = [1, 3], only two products: PCC +-1.
    # [1,.5,1] W = [2, 3.5]; both increase -> +1.
    assert h2["pcc"][0] == pytest.approx(1.0)
    summary = {r["name"]: r for r in analysis.summarize(result)}
    assert summary["hidden"]["angle_deg"] == pytest.approx(h["angle_deg"][0])


def test_coupled_ann_matches_ann_mode_with_batch_norm():
    # Independent check of a = clip(V_f / theta, 0, T) with BN and a convolution: the
    # layer in "ann" mode fed the SNN input counts gives max(V_f / theta, 0).
    keras.utils.set_random_seed(4)
    inp = keras.Input((5, 5, 2))
    s = tk.SpikeEncoder(4, name="enc")(inp)
    s = tk.TandemConv2D(3, 3, strides=2, threshold=0.5, name="conv")(s)
    out = keras.layers.Dense(2)(keras.layers.Flatten()(tk.SpikeCount()(s)))
    m = keras.Model(inp, out)
    conv = m.get_layer("conv")
    rng = np.random.default_rng(0)
    conv.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") if i < 2 else
                      rng.uniform(0.5, 1.5, w.shape).astype("float32")
                      for i, w in enumerate(conv.get_weights())])
    x = rng.uniform(0, 4, (3, 5, 5, 2)).astype("float32")
    result = analysis.direction_preservation(m, x)["conv"]
    enc_counts = np.sum(keras.Model(inp, m.get_layer("enc").output)(x), axis=1)
    ann_conv = tk.TandemConv2D.from_config(dict(conv.get_config(), mode="ann"))
    ann_conv.build((None, 1, 5, 5, 2))
    ann_conv.set_weights(conv.get_weights())
    expected = np.clip(np.asarray(ann_conv(enc_counts[:, None]))[:, 0], 0, 4)
    np.testing.assert_allclose(result["ann_counts"], expected, rtol=1e-5, atol=1e-5)
    assert result["snn_counts"].shape == (3, 3, 3, 3)
    assert np.all((result["angle_deg"] >= 0) | np.isnan(result["angle_deg"]))


def test_helpers_and_bad_input():
    assert np.isnan(analysis.cosine_angle_degrees(np.zeros((1, 3)), np.ones((1, 3))))[0]
    assert np.isnan(analysis.pearson(np.ones((1, 3)), np.arange(3.0)[None]))[0]
    np.testing.assert_allclose(analysis.cosine_angle_degrees(np.eye(2), np.eye(2)[::-1]), [90, 90])
    plain = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2), tk.SpikeCount()])
    with pytest.raises(ValueError, match="no tandem layer"):
        analysis.direction_preservation(plain, np.ones((1, 4), "float32"))


def test_direction_preservation_runs_the_snn_whatever_the_mode():
    quantized = tk.with_mode(_model(), "quantized")
    h = analysis.direction_preservation(quantized, X)["hidden"]
    np.testing.assert_array_equal(h["snn_counts"], [[1, 2, 1]])  # SNN counts, not [1, 2, 0]


def test_direction_preservation_against_the_papers_integer_counts():
    """rounding="floor": c against floor(a) (Eq. 11), by hand: hidden a = [1, 2.2, 0.3] ->
    [1, 2, 0]; hidden2 a = [1, .5, 1] -> [1, 0, 1] (= c: angle 0, products identical)."""
    result = analysis.direction_preservation(_model(), X, rounding="floor")
    h, h2 = result["hidden"], result["hidden2"]
    np.testing.assert_array_equal(h["ann_counts"], [[1, 2, 0]])
    np.testing.assert_array_equal(h2["ann_counts"], [[1, 0, 1]])
    assert h["angle_deg"][0] == pytest.approx(_angle([1, 2, 1], [1, 2, 0]), rel=1e-5)
    assert h2["angle_deg"][0] == pytest.approx(0.0, abs=1e-3)
    # [1,2,1] W2 = [1, .5, 1]; [1,2,0] W2 = [0, .5, 1]
    assert h["pcc"][0] == pytest.approx(np.corrcoef([1, .5, 1], [0, .5, 1])[0, 1], rel=1e-5)
    summary = {r["name"]: r for r in analysis.summarize(result)}
    assert summary["hidden"]["pcc_median"] == pytest.approx(h["pcc"][0])
    with pytest.raises(ValueError, match="rounding"):
        analysis.direction_preservation(_model(), X, rounding="round")


def test_residual_neuron_and_products_through_the_shortcut():
    """Fig. 9 on a residual block: TandemAdd's coupled ANN a = clip((X_branch + X_shortcut) /
    theta + v0, 0, T) from the time-sums of its input trains (the branch's current, the
    shortcut's spikes), and the block input's products through both its synapse sets (the
    branch conv's kernel and the identity), from the layers' own outputs."""
    import tensorflow as tf

    from tests.tandem_keras.test_synops_graph import _liven, residual_identity_block

    keras.utils.set_random_seed(6)
    model, _ = residual_identity_block()
    _liven(model, 4)
    x = np.random.default_rng(5).uniform(0, 3, (5, 8, 8, 2)).astype("float32")
    result = analysis.direction_preservation(model, x)
    assert sorted(result) == ["add", "b1", "stem"]
    names = ("stem", "b2", "add")
    stem, b2, add = (np.asarray(v).sum(axis=1) for v in keras.Model(
        model.inputs[0], [model.get_layer(n).output for n in names])(x))
    np.testing.assert_array_equal(result["add"]["snn_counts"], add)
    np.testing.assert_allclose(result["add"]["ann_counts"], np.clip(b2 + stem, 0, 3), atol=1e-5)
    kernel = model.get_layer("b1").kernel
    a = result["stem"]["ann_counts"]
    products = [np.concatenate([tf.nn.conv2d(v, kernel, 1, "SAME").numpy().reshape(5, -1),
                                v.reshape(5, -1)], axis=1) for v in (stem, a)]
    np.testing.assert_allclose(result["stem"]["pcc"], analysis.pearson(*products), rtol=1e-5)
    assert add.sum() > 0 and np.isfinite(result["add"]["angle_deg"]).all()
    rows = {r["name"]: r for r in analysis.representation_error(model, x)}
    assert sorted(rows) == ["add", "b1", "enc", "stem"]
