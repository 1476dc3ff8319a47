"""describe_model / count_synops on Keras graphs: hand-set weights and known spikes, the
paper's networks and registered models (hand-computed MACs), and graphs with pooling,
merges and global average pooling against brute-force composite maps."""
import keras
import numpy as np
import pytest

import tandem_keras as tk
from tandem_keras import synops


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
    r = synops.count_synops(_dense_net(), np.array([[2.0, 0.0, 1.0, 5.0]], "float32"))
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
    r = synops.count_synops(_dense_net(), x, batch_size=1)
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
    counts = synops.activity_model(m)(image)
    np.testing.assert_array_equal(np.asarray(counts["conv"])[0, :, :, 0],
                                  [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    r = synops.count_synops(m, image)
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
    # Same hand-computed totals as test_synops_ops.py, from real Keras graphs.
    cifarnet = synops.describe_model(_spiking_stack(
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
    [[spec]] = enc_row["fanout_chains"]
    assert synops.row_fanout(enc_row).sum() == synops.connections(spec)
    assert spec["layer"] == "conv0"
    fan = synops.row_fanout(enc_row)
    assert fan.shape == (32, 32, 128)
    assert (fan[0, 0, 0], fan[1, 2, 0], fan[2, 2, 5], fan[31, 31, 0]) == (256, 512, 1024, 256)
    # fc0 spikes reach the readout through SpikeCount and Dropout.
    assert cifarnet["layers"][5]["fanout_chains"][0][0]["units"] == 10

    alexnet = synops.describe_model(_spiking_stack(
        (32, 32, 3), (96, 3, 1), [(256, 3, 2), (384, 3, 2), (384, 3, 1), (256, 3, 1)],
        [1024], 10, decode="spike_count"))
    assert sum(r["macs"] for r in alexnet["layers"]) == 274_245_632
    # Spike-count decoding adds the output TandemDense to the spiking depth: 10 + 7 (the
    # paper reports 18 for AlexNet, i.e. 8 spiking layers; see eval report notes).
    assert alexnet["inference_time_steps"] == 17
    assert alexnet["layers"][-1]["kind"] == "tandem"
    assert alexnet["layers"][-1]["fanout_chains"] == []


def test_unsupported_graphs():
    inp = keras.Input((4, 4, 1))
    s = tk.SpikeCount()(tk.SpikeEncoder(2, name="enc")(inp))
    out = keras.layers.MaxPooling2D(name="max_of_counts")(s)   # not a spike train: not linear
    with pytest.raises(NotImplementedError, match="cannot count the fan-out of 'enc' into layer 'max_of_counts'"):
        synops.describe_model(keras.Model(inp, out))
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no spiking layer"):
        synops.describe_model(plain)
    with pytest.raises(ValueError, match="expected a keras.Model"):
        synops.describe_model("model")


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
    rows = {r["name"]: r for r in synops.describe_model(m)["layers"]}
    np.testing.assert_array_equal(synops.row_fanout(rows["conv"]), np.full((2, 2, 2), 3))
    # valid 3x3 on 4x4: corner inputs feed 1 output position, the centre 2x2 feed 4.
    enc_fan = synops.row_fanout(rows["enc"])[:, :, 0]
    np.testing.assert_array_equal(enc_fan, 2 * np.outer([1, 2, 2, 1], [1, 2, 2, 1]))
    with pytest.raises(ValueError, match="no symbolic graph"):
        synops.describe_model(keras.Sequential([tk.SpikeEncoder(2), tk.SpikeCount()]))


def test_count_synops_on_a_dataset():
    import tensorflow as tf

    x = np.array([[2.0, 0.0, 1.0, 5.0], [0.0, 0.0, 0.0, 0.0]], "float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(2))).batch(1)
    assert synops.count_synops(_dense_net(), ds)["synops_snn"] == pytest.approx(21 / 2)
    with pytest.raises(ValueError, match="no examples"):
        synops.count_synops(_dense_net(), np.zeros((0, 4), "float32"))


# --- registered paper models (models/): hand-computed MAC totals (tests/tandem_keras/
# test_synops_ops.py, Eq. 14) and inference time steps T + spiking layers (method §5): the
# paper says CIFARNet 10 + 6 = 16 and AlexNet 10 + 8 = 18; these models have 6 (AlexNet
# CIFAR-10) and 7 (AlexNet ImageNet) spiking layers, so 16 and 17.

CASES = [
    # name, ANN MACs, spiking layers (encoder + tandem)
    ("cifarnet", 792_078_336, 6),
    ("alexnet_cifar", 274_245_632, 6),
    ("alexnet_imagenet", 1_140_099_072, 7),
]


# ResNet-20 (He et al.'s CIFAR ResNet), full width, 32x32x3, all 3x3 'same':
#   encoder conv 16: 27*16*32*32                                      =    442,368
#   stage 1 (32x32): 6 convs 16->16, 144*16*1024 each                 = 14,155,776
#     identity shortcuts into 3 TandemAdds: 16*32*32 each (one synapse per neuron) = 49,152
#   stage 2 (16x16): conv1 s2 144*32*256 = 1,179,648, conv2 288*32*256 = 2,359,296,
#     1x1 s2 projection 16*32*256 = 131,072, 4 more convs 2,359,296 each = 9,437,184;
#     2 identity shortcuts 32*256 each = 16,384                       = 13,123,584
#   stage 3 (8x8): 1,179,648 + 2,359,296 + 131,072 + 9,437,184 + 2 * 64*64 = 13,115,392
#   global average pooling (no MACs), dense 64 -> 10: 640             total 40,886,912
# Spiking layers on the longest path: encoder + 9 blocks x (conv1, add) = 19.
RESNET20_MACS = 40_886_912
# VGG-11 for CIFAR (configuration A, average pooling, a 512 head), full width:
#   encoder conv 64 at 32x32: 27*64*1024 = 1,769,472; pool; 128 at 16x16: 576*128*256 =
#   18,874,368; pool; 256, 256 at 8x8: 1152*256*64 = 18,874,368, 2304*256*64 = 37,748,736;
#   pool; 512, 512 at 4x4: 2304*512*16 = 18,874,368, 4608*512*16 = 37,748,736; pool; 512,
#   512 at 2x2: 4608*512*4 = 9,437,184 each; pool; dense 512*512 = 262,144; logits 5,120
#                                                                     total 153,031,680
# Spiking layers: encoder + 7 convs + 1 dense = 9.
VGG11_MACS = 153_031_680
CASES += [("resnet20", RESNET20_MACS, 19), ("vgg11", VGG11_MACS, 9)]


@pytest.mark.parametrize("name,macs,spiking", CASES)
def test_registered_models(name, macs, spiking):
    models = pytest.importorskip("models", reason="models/ is not available")
    description = synops.describe_model(models.build(name, time_steps=10))
    assert sum(r["macs"] for r in description["layers"]) == macs
    assert description["spiking_depth"] == spiking
    assert description["inference_time_steps"] == 10 + spiking
    rows = description["layers"]
    if name == "resnet20":  # per block: conv1, conv2 (synapses), [projection], the residual neuron
        kinds = [r["kind"] for r in rows]
        assert kinds.count("residual") == 9 and kinds.count("synapses") == 9 + 2
        assert rows[-1]["fanout_chains"] == [] and rows[-2]["fanout_chains"][0][0]["type"] == "global_avg_pool2d"
        return
    assert [r["kind"] for r in rows] == ["encoder"] + ["tandem"] * (spiking - 1) + ["readout"]
    # Every spiking layer's spikes reach exactly the next weighted layer.
    for row, following in zip(rows[:-1], rows[1:]):
        assert [chain[-1]["layer"] for chain in row["fanout_chains"]] == [following["name"]]


def test_spike_count_decoding_adds_a_spiking_layer():
    models = pytest.importorskip("models", reason="models/ is not available")
    description = synops.describe_model(models.build("cifarnet", time_steps=10,
                                                     decode="spike_count"))
    assert description["inference_time_steps"] == 17  # paper: 16 for both decodings
    assert description["layers"][-1]["kind"] == "tandem"
    assert description["layers"][-1]["fanout_chains"] == []


# --- graphs with pooling, merges and global average pooling -------------------------------
# Each builder returns the model and, per spiking layer, the chains its spikes follow, written
# by hand from the architecture (tests/tandem_keras/test_synops_ops.py's specs). The expected
# fan-out is the brute-force count of the composite maps' nonzero connections (dense
# matrices from the operations' TensorFlow definitions); SynOps = sum_j fanout_j c_j with the
# counts read from the layers' own outputs.

from tests.tandem_keras.test_synops_ops import _brute_force, _conv_spec, _pool  # noqa: E402

L = keras.layers


def _front(shape=(8, 8, 2), t=3):
    inp = keras.Input(shape)
    x = L.Conv2D(4, 3, padding="same", name="enc_conv")(inp)
    return inp, tk.SpikeEncoder(t, name="enc")(x)


def _dense(shape, units, layer):
    return {"type": "dense", "input_shape": list(shape), "units": units, "layer": layer}


def _concat(shape, axis, offset, size, layer="cat"):
    return {"type": "concat", "input_shape": list(shape), "axis": axis, "offset": offset,
            "size": size, "layer": layer}


def issue_sequential():
    """Issue 17's example: max pooling of spike trains between a tandem conv and the readout."""
    m = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3, padding="same"),
                          tk.SpikeEncoder(3, name="enc"), tk.TandemConv2D(8, 3, name="conv"),
                          L.TimeDistributed(L.MaxPooling2D(), name="pool"), tk.SpikeCount(),
                          L.Flatten(), L.Dense(10, name="out")])
    return m, {"enc": [[_conv_spec([8, 8, 8], 8, 3, 1, "same")]], "conv": [],
               "pool": [[_dense([128], 10, "out")]]}


def max_pool_between_tandem_layers():
    inp, s = _front()
    s = tk.TandemConv2D(6, 3, name="c1")(s)
    s = L.TimeDistributed(L.MaxPooling2D(3, 2, padding="same"), name="pool")(s)
    s = tk.TandemConv2D(5, 3, padding="valid", name="c2")(s)
    out = L.Dense(3, name="out")(L.Flatten()(tk.SpikeCount()(s)))
    return keras.Model(inp, out), {
        "enc": [[_conv_spec([8, 8, 4], 6, 3, 1, "same", "c1")]], "c1": [],
        "pool": [[_conv_spec([4, 4, 6], 5, 3, 1, "valid", "c2")]], "c2": [[_dense([20], 3, "out")]]}


def average_pooled_counts():
    inp, s = _front()
    s = tk.TandemConv2D(6, 3, name="c1")(s)
    x = L.AveragePooling2D(3, 2, name="avg")(tk.SpikeCount()(s))           # 8 -> 3, overlapping
    out = L.Dense(4, name="out")(L.Flatten()(x))
    return keras.Model(inp, out), {
        "enc": [[_conv_spec([8, 8, 4], 6, 3, 1, "same", "c1")]],
        "c1": [[_pool([8, 8, 6], 3, 2, "valid", "avg"), _dense([54], 4, "out")]]}


def global_average_pooled_counts():
    inp, s = _front()
    s = tk.TandemConv2D(6, 3, strides=2, name="c1")(s)
    out = L.Dense(5, name="out")(L.GlobalAveragePooling2D(name="gap")(tk.SpikeCount()(s)))
    gap = {"type": "global_avg_pool2d", "input_shape": [4, 4, 6], "keepdims": False, "layer": "gap"}
    return keras.Model(inp, out), {
        "enc": [[_conv_spec([8, 8, 4], 6, 3, 2, "same", "c1")]], "c1": [[gap, _dense([6], 5, "out")]]}


def concatenated_spike_trains():
    """Two branches concatenated along channels into a tandem conv, GAP readout."""
    inp, s = _front()
    a = tk.TandemConv2D(3, 3, name="a")(s)
    b = tk.TandemConv2D(5, 1, name="b")(s)
    x = tk.TandemConv2D(4, 3, strides=2, name="c")(L.Concatenate(name="cat")([a, b]))
    x = L.GlobalAveragePooling2D(keepdims=True, name="gap")(tk.SpikeCount()(x))
    out = L.Dense(2, name="out")(L.Flatten()(x))
    gap = {"type": "global_avg_pool2d", "input_shape": [4, 4, 4], "keepdims": True, "layer": "gap"}
    wide = _conv_spec([8, 8, 8], 4, 3, 2, "same", "c")
    return keras.Model(inp, out), {
        "enc": [[_conv_spec([8, 8, 4], 3, 3, 1, "same", "a")], [_conv_spec([8, 8, 4], 5, 1, 1, "same", "b")]],
        "a": [[_concat([8, 8, 3], 2, 0, 8), wide]], "b": [[_concat([8, 8, 5], 2, 3, 8), wide]],
        "c": [[gap, _dense([4], 2, "out")]]}


def added_counts():
    inp, s = _front(t=4)
    a = tk.TandemConv2D(3, 3, name="a")(s)
    b = tk.TandemConv2D(3, 3, strides=1, padding="same", name="b")(a)
    x = L.Add(name="add")([tk.SpikeCount()(a), tk.SpikeCount()(b)])
    out = L.Dense(3, name="out")(L.Flatten()(x))
    return keras.Model(inp, out), {
        "enc": [[_conv_spec([8, 8, 4], 3, 3, 1, "same", "a")]],
        "a": [[_conv_spec([8, 8, 3], 3, 3, 1, "same", "b")], [_dense([192], 3, "out")]],
        "b": [[_dense([192], 3, "out")]]}


def concatenated_flat_counts():
    inp, s = _front()
    a = tk.TandemConv2D(2, 3, strides=2, name="a")(s)
    b = tk.TandemDense(7, name="b")(tk.TimeFlatten()(s))
    x = L.Concatenate(name="cat")([L.Flatten()(tk.SpikeCount()(a)), tk.SpikeCount()(b)])
    out = L.Dense(3, name="out")(x)
    return keras.Model(inp, out), {
        "enc": [[_conv_spec([8, 8, 4], 2, 3, 2, "same", "a")], [_dense([256], 7, "b")]],
        "a": [[_concat([32], 0, 0, 39), _dense([39], 3, "out")]],
        "b": [[_concat([7], 0, 32, 39), _dense([39], 3, "out")]]}


def pooled_and_direct_paths():
    """A spike reaches the readout's neurons twice (directly and after 'same' pooling, added):
    its distinct synapses are counted once."""
    inp, s = _front()
    c = tk.SpikeCount()(tk.TandemConv2D(3, 3, name="c1")(s))
    x = L.Add(name="add")([c, L.AveragePooling2D(3, 1, padding="same", name="avg")(c)])
    out = L.Conv2D(2, 3, strides=2, padding="same", name="head")(x)
    out = L.Dense(3, name="out")(L.GlobalAveragePooling2D()(out))
    head = _conv_spec([8, 8, 3], 2, 3, 2, "same", "head")
    return keras.Model(inp, out), {
        "enc": [[_conv_spec([8, 8, 4], 3, 3, 1, "same", "c1")]],
        "c1": [[head], [_pool([8, 8, 3], 3, 1, "same", "avg"), head]]}


def depthwise_readout():
    inp, s = _front()
    c = tk.SpikeCount()(tk.TandemConv2D(3, 3, name="c1")(s))
    x = L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="valid", name="dw")(c)
    out = L.Dense(3, name="out")(L.Flatten()(x))
    return keras.Model(inp, out), {
        "enc": [[_conv_spec([8, 8, 4], 3, 3, 1, "same", "c1")]],
        "c1": [[{"type": "depthwise_conv2d", "input_shape": [8, 8, 3], "depth_multiplier": 2,
                 "kernel_size": [3, 3], "strides": [2, 2], "padding": "valid", "layer": "dw"}]]}


def concatenated_trains_into_dense():
    inp, s = _front()
    a = tk.TimeFlatten()(tk.TandemConv2D(2, 3, strides=2, name="a")(s))
    b = tk.TandemDense(5, name="b")(tk.TimeFlatten()(s))
    x = tk.TandemDense(4, name="d")(L.Concatenate(name="cat")([a, b]))
    out = L.Dense(2, name="out")(tk.SpikeCount()(x))
    return keras.Model(inp, out), {
        "enc": [[_conv_spec([8, 8, 4], 2, 3, 2, "same", "a")], [_dense([256], 5, "b")]],
        "a": [[_concat([32], 0, 0, 37), _dense([37], 4, "d")]],
        "b": [[_concat([5], 0, 32, 37), _dense([37], 4, "d")]], "d": [[_dense([4], 2, "out")]]}


def _identity(shape, layer, index):
    return {"type": "identity", "input_shape": list(shape), "layer": layer, "input": index}


def pooling_on_spike_trains():
    """tk.AveragePooling2D folded into the next tandem conv; tk.MaxPooling2D a spiking layer."""
    inp, s = _front()
    s = tk.TandemConv2D(6, 3, name="c1")(s)
    s = tk.AveragePooling2D(2, name="avg")(s)                            # 8 -> 4, a current
    s = tk.TandemConv2D(5, 3, name="c2")(s)
    s = tk.MaxPooling2D(2, name="max")(s)                                # 4 -> 2, spikes
    s = tk.TandemDense(4, name="d")(tk.TimeFlatten()(s))
    out = L.Dense(3, name="out")(tk.SpikeCount()(s))
    return keras.Model(inp, out), {
        "enc": [[_conv_spec([8, 8, 4], 6, 3, 1, "same", "c1")]],
        "c1": [[_pool([8, 8, 6], 2, 2, "valid", "avg"), _conv_spec([4, 4, 6], 5, 3, 1, "same", "c2")]],
        "c2": [], "max": [[_dense([20], 4, "d")]], "d": [[_dense([4], 3, "out")]]}


def residual_identity_block():
    """ResNet's basic block: conv (neurons), conv (synapses only), + the block input's spikes."""
    inp, s = _front()
    x = tk.TandemConv2D(4, 3, name="stem")(s)
    y = tk.TandemConv2D(4, 3, name="b1")(x)
    y = tk.TandemConv2D(4, 3, neuron=None, name="b2")(y)
    z = tk.TandemAdd(name="add")([y, x])
    out = L.Dense(3, name="out")(L.GlobalAveragePooling2D()(tk.SpikeCount()(z)))
    gap = {"type": "global_avg_pool2d", "input_shape": [8, 8, 4], "keepdims": False}
    return keras.Model(inp, out), {
        "enc": [[_conv_spec([8, 8, 4], 4, 3, 1, "same", "stem")]],
        "stem": [[_conv_spec([8, 8, 4], 4, 3, 1, "same", "b1")], [_identity([8, 8, 4], "add", 1)]],
        "b1": [[_conv_spec([8, 8, 4], 4, 3, 1, "same", "b2")]],
        "add": [[gap, _dense([4], 3, "out")]]}


def residual_projection_block():
    """Downsampling block: a 1x1 stride-2 synapse-only projection on the shortcut, a scaled
    identity-free sum, GAP of the trains into the spike-count readout."""
    inp, s = _front()
    y = tk.TandemConv2D(6, 3, strides=2, name="b1")(s)
    y = tk.TandemConv2D(6, 3, neuron=None, name="b2")(y)
    p = tk.TandemConv2D(6, 1, strides=2, neuron=None, name="proj")(s)
    z = tk.TandemAdd(scales=[1.0, 0.5], neuron=tk.neurons.LIF(0.8), name="add")([y, p])
    z = tk.TandemDense(3, batch_norm=False, name="out")(tk.GlobalAveragePooling2D(name="gap")(z))
    gap = {"type": "global_avg_pool2d", "input_shape": [4, 4, 6], "keepdims": False, "layer": "gap"}
    return keras.Model(inp, tk.SpikeCount()(z)), {
        "enc": [[_conv_spec([8, 8, 4], 6, 3, 2, "same", "b1")], [_conv_spec([8, 8, 4], 6, 1, 2, "same", "proj")]],
        "b1": [[_conv_spec([4, 4, 6], 6, 3, 1, "same", "b2")]],
        "add": [[gap, _dense([6], 3, "out")]], "out": []}


GRAPHS = [issue_sequential, max_pool_between_tandem_layers, average_pooled_counts,
          global_average_pooled_counts, concatenated_spike_trains, added_counts,
          concatenated_flat_counts, pooled_and_direct_paths, depthwise_readout,
          concatenated_trains_into_dense, pooling_on_spike_trains, residual_identity_block,
          residual_projection_block]


def _liven(model, seed):
    """Positive BN offsets: random weights spike at a rate that makes the counts meaningful."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tk.TandemLayer) and layer.batch_norm:
            layer.beta.assign(rng.uniform(0.3, 0.8, layer.beta.shape).astype("float32"))


@pytest.mark.parametrize("build", GRAPHS, ids=[g.__name__ for g in GRAPHS])
def test_graph_fanout_and_synops_against_brute_force(build):
    keras.utils.set_random_seed(GRAPHS.index(build))
    model, expected = build()
    _liven(model, 0)
    description = synops.describe_model(model)
    rows = {r["name"]: r for r in description["layers"] if r["spiking"]}
    assert sorted(rows) == sorted(expected)
    x = np.random.default_rng(1).uniform(0, 3, (6, *model.inputs[0].shape[1:])).astype("float32")
    probe = keras.Model(model.inputs[0], [model.get_layer(n).output for n in expected])
    trains = probe(x, training=False)
    total = 0.0
    for name, train in zip(expected, trains if len(expected) > 1 else [trains]):
        shape = rows[name]["shape"]
        fan = (_brute_force(shape, expected[name]) if expected[name]
               else np.zeros(shape, np.int64))
        np.testing.assert_array_equal(synops.row_fanout(rows[name]), fan, err_msg=name)
        total += float(np.sum(np.asarray(train).sum(axis=1) * fan)) / len(x)
    report = synops.count_synops(model, x, batch_size=4)
    assert report["synops_snn"] == pytest.approx(total, rel=1e-9)
    assert report["synops_snn"] > 0


def test_residual_rows_and_macs():
    """TandemAdd: a 'residual' row whose synapses (and ANN MACs, one per neuron) are those of
    its spike-train inputs only; synapse-only convs are 'synapses' rows; depth counts the
    neurons on the longest path (enc, stem, b1, add; b2 has none)."""
    model, _ = residual_identity_block()
    d = synops.describe_model(model)
    rows = {r["name"]: r for r in d["layers"]}
    assert [(r["name"], r["kind"]) for r in d["layers"]] == [
        ("enc", "encoder"), ("stem", "tandem"), ("b1", "tandem"), ("b2", "synapses"),
        ("add", "residual"), ("out", "readout")]
    assert rows["add"]["macs"] == 8 * 8 * 4 and len(rows["add"]["mac_specs"]) == 1
    assert rows["b2"]["macs"] == 36 * 8 * 8 * 4 and not rows["b2"]["spiking"]
    assert d["spiking_depth"] == 4
    projection, _ = residual_projection_block()
    rows = {r["name"]: r for r in synops.describe_model(projection)["layers"]}
    assert rows["add"]["macs"] == 0            # both inputs are currents
    assert rows["proj"]["macs"] == 4 * 4 * 4 * 6 and rows["proj"]["kind"] == "synapses"
    assert rows["out"]["kind"] == "tandem" and rows["out"]["macs"] == 6 * 3
