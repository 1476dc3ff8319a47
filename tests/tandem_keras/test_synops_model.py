"""count_synops / describe_model on Keras models with hand-set weights and known spikes."""
import keras
import numpy as np
import pytest

import tandem_keras as tk
from tandem_keras import activity, synops


def _dense_net():
    m = keras.Sequential([
        keras.Input((4,)),
        tk.SpikeEncoder(3, name="enc"),
        tk.TandemDense(2, batch_norm=False, use_bias=False, name="hidden"),
        tk.SpikeCount(name="count"),
        keras.layers.Dense(3, name="out"),
    ])
    m.get_layer("hidden").set_weights([np.array(
        [[0.5, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.4]], "float32")])
    return m


def test_dense_network_hand_computed():
    # x = [2, 0, 1, 5], T = 3 -> encoder counts [2, 0, 1, 3] (6 spikes), trains
    # t0 [1,0,1,1], t1 [1,0,0,1], t2 [0,0,0,1].
    # hidden 0: z = .5 s0 -> V .5, 1.0 (spike), 0 -> 1 spike.
    # hidden 1: z = s2 + .4 s3 -> 1.4 (spike), .4+.4 = .8, .8+.4 = 1.2 (spike) -> 2 spikes.
    # SynOps: 6 encoder spikes x fan-out 2 + 3 hidden spikes x fan-out 3 = 21.
    # ANN MACs: hidden 4*2 + out 2*3 = 14 (no analog encoder layer).
    r = activity.count_synops(_dense_net(), np.array([[2.0, 0.0, 1.0, 5.0]], "float32"))
    layers = {e["name"]: e for e in r["layers"]}
    assert layers["enc"]["avg_spike_count"] == pytest.approx(6 / 4)
    assert layers["hidden"]["avg_spike_count"] == pytest.approx(3 / 2)
    assert layers["hidden"]["firing_rate"] == pytest.approx(0.5)
    assert layers["enc"]["synops"] == 12 and layers["hidden"]["synops"] == 9
    assert layers["out"]["synops"] == 0 and layers["out"]["kind"] == "readout"
    assert r["synops_snn"] == 21 and r["synops_ann"] == 14
    assert r["synops_ratio"] == pytest.approx(1.5)
    assert r["encoder_macs"] == 0
    assert r["energy_snn_joules"] == pytest.approx(21 * 0.9e-12)
    assert r["energy_ann_joules"] == pytest.approx(14 * 4.6e-12)
    assert r["time_steps"] == 3 and r["inference_time_steps"] == 3 + 2


def test_batch_average_and_batching():
    x = np.array([[2.0, 0.0, 1.0, 5.0], [0.0, 0.0, 0.0, 0.0]], "float32")
    r = activity.count_synops(_dense_net(), x, batch_size=1)
    assert r["examples"] == 2 and r["synops_snn"] == pytest.approx(21 / 2)


def _conv_net():
    inp = keras.Input((3, 3, 1))
    s = tk.SpikeEncoder(2, name="enc")(inp)
    s = tk.TandemConv2D(1, 3, padding="same", batch_norm=False, use_bias=False, name="conv")(s)
    c = keras.layers.Flatten()(tk.SpikeCount()(s))
    out = keras.layers.Dense(2, name="out")(c)
    m = keras.Model(inp, out)
    m.get_layer("conv").set_weights([np.full((3, 3, 1, 1), 0.5, "float32")])
    return m


def test_conv_network_hand_computed():
    # Image counts (T=2): corner (0,0) = 2, centre = 1. Fan-out into a 3x3 "same" conv
    # on 3x3: corners 4, edges 6, centre 9 -> encoder SynOps 2*4 + 1*9 = 17.
    # Conv (all weights .5): outputs seeing corner and centre get 1.0 at t0 (spike) then
    # .5 -> 1 spike each, at (0,0), (0,1), (1,0), (1,1); the others see only the centre,
    # .5 then 0 -> no spike. 4 spikes x fan-out 2 (dense) = 8. Total 25.
    # ANN MACs: conv 9*1 * 9 neurons = 81, dense 9*2 = 18 -> 99.
    image = np.zeros((1, 3, 3, 1), "float32")
    image[0, 0, 0, 0], image[0, 1, 1, 0] = 2.0, 1.0
    m = _conv_net()
    counts = activity.activity_model(m)(image)
    np.testing.assert_array_equal(np.asarray(counts["conv"])[0, :, :, 0],
                                  [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    r = activity.count_synops(m, image)
    layers = {e["name"]: e for e in r["layers"]}
    assert layers["enc"]["synops"] == 17 and layers["conv"]["synops"] == 8
    assert layers["enc"]["mean_fanout"] == pytest.approx((4 * 4 + 4 * 6 + 9) / 9)
    assert r["synops_snn"] == 25 and r["synops_ann"] == 99


def _spiking_stack(input_shape, encoder, convs, dense, num_classes, decode="membrane"):
    inp = keras.Input(input_shape)
    filters, k, s = encoder
    x = keras.layers.Conv2D(filters, k, strides=s, padding="same", name="enc_conv")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = tk.SpikeEncoder(10, name="enc")(x)
    for i, (filters, k, s) in enumerate(convs):
        x = tk.TandemConv2D(filters, k, strides=s, name=f"conv{i}")(x)
    x = tk.TimeFlatten()(x)
    for i, units in enumerate(dense):
        x = tk.TandemDense(units, name=f"fc{i}")(x)
    if decode == "membrane":
        x = keras.layers.Dropout(0.2)(tk.SpikeCount()(x))
        out = keras.layers.Dense(num_classes, name="out")(x)
    else:
        out = tk.SpikeCount()(tk.TandemDense(num_classes, batch_norm=False, name="out")(x))
    return keras.Model(inp, out)


def test_paper_networks_description():
    # Same hand-computed totals as tests/tandem_keras/test_synops.py, from real Keras graphs.
    cifarnet = activity.describe_model(_spiking_stack(
        (32, 32, 3), (128, 3, 1), [(256, 3, 2), (512, 3, 2), (1024, 3, 1), (512, 3, 1)],
        [1024], 10))
    assert sum(r["macs"] for r in cifarnet["layers"]) == 792_078_336
    assert cifarnet["layers"][0]["macs"] == 27 * 32 * 32 * 128  # encoder conv merged
    # Paper: CIFARNet 10 + 6 = 16 inference steps (encoder + 4 conv + 1 dense spiking).
    assert cifarnet["spiking_depth"] == 6 and cifarnet["inference_time_steps"] == 16
    kinds = [r["kind"] for r in cifarnet["layers"]]
    assert kinds == ["encoder"] + ["tandem"] * 5 + ["readout"]
    # Encoder spikes reach conv0 (256 filters, 3x3, stride 2, 32 -> 16; TF pads 0 before,
    # 1 after): output o reads inputs 2o, 2o+1, 2o+2, so per axis input 0 and odd inputs
    # are read once, even inputs >= 2 twice -> fan-out 256 * {1,2} * {1,2}.
    enc_row = cifarnet["layers"][0]
    assert activity.row_fanout(enc_row).sum() == synops.connections(enc_row["fanout_specs"][0])
    assert enc_row["fanout_specs"][0]["layer"] == "conv0"
    fan = activity.row_fanout(enc_row)
    assert fan.shape == (32, 32, 128)
    assert (fan[0, 0, 0], fan[1, 2, 0], fan[2, 2, 5], fan[31, 31, 0]) == (256, 512, 1024, 256)
    # fc0 spikes reach the readout through SpikeCount and Dropout.
    assert cifarnet["layers"][5]["fanout_specs"][0]["units"] == 10

    alexnet = activity.describe_model(_spiking_stack(
        (32, 32, 3), (96, 3, 1), [(256, 3, 2), (384, 3, 2), (384, 3, 1), (256, 3, 1)],
        [1024], 10, decode="spike_count"))
    assert sum(r["macs"] for r in alexnet["layers"]) == 274_245_632
    # Spike-count decoding adds the output TandemDense to the spiking depth: 10 + 7 (the
    # paper reports 18 for AlexNet, i.e. 8 spiking layers; see eval report notes).
    assert alexnet["inference_time_steps"] == 17
    assert alexnet["layers"][-1]["kind"] == "tandem"
    assert alexnet["layers"][-1]["fanout_specs"] == []


def test_unsupported_graphs():
    inp = keras.Input((4,))
    s = tk.SpikeEncoder(2)(inp)
    out = keras.layers.Add()([s, s])
    with pytest.raises(NotImplementedError, match="cannot count the fan-out"):
        activity.describe_model(keras.Model(inp, out))
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no spiking layer"):
        activity.describe_model(plain)
    with pytest.raises(ValueError, match="expected a keras.Model"):
        activity.describe_model("model")


def test_time_distributed_flatten_and_unbuilt_model():
    # method §1: TimeDistributed(Flatten) between conv and dense tandem layers is shape-only.
    m = keras.Sequential([
        keras.Input((4, 4, 1)),
        tk.SpikeEncoder(2, name="enc"),
        tk.TandemConv2D(2, 3, padding="valid", name="conv"),
        keras.layers.TimeDistributed(keras.layers.Flatten()),
        tk.TandemDense(3, name="fc"),
        tk.SpikeCount(),
    ])
    rows = {r["name"]: r for r in activity.describe_model(m)["layers"]}
    np.testing.assert_array_equal(activity.row_fanout(rows["conv"]), np.full((2, 2, 2), 3))
    # valid 3x3 on 4x4: corner inputs feed 1 output position, the centre 2x2 feed 4.
    enc_fan = activity.row_fanout(rows["enc"])[:, :, 0]
    np.testing.assert_array_equal(enc_fan, 2 * np.outer([1, 2, 2, 1], [1, 2, 2, 1]))
    with pytest.raises(ValueError, match="no symbolic graph"):
        activity.describe_model(keras.Sequential([tk.SpikeEncoder(2), tk.SpikeCount()]))


def test_count_synops_on_a_dataset():
    import tensorflow as tf

    x = np.array([[2.0, 0.0, 1.0, 5.0], [0.0, 0.0, 0.0, 0.0]], "float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(2))).batch(1)
    assert activity.count_synops(_dense_net(), ds)["synops_snn"] == pytest.approx(21 / 2)
    with pytest.raises(ValueError, match="no examples"):
        activity.count_synops(_dense_net(), np.zeros((0, 4), "float32"))
