"""Operation specs and composite maps (tandem_keras.synops.ops, .composite): fan-out, SynOps, MACs, energy.

References: (1) an enumeration of every connection of a convolution, done by
`tf.image.extract_patches` on an image of neuron indices (TensorFlow's own padding);
(2) the gradient of ``sum(conv(x))`` with an all-ones kernel, which equals the fan-out;
(3) hand-computed MAC totals of the paper's networks (method §7); (4) for chains through
pooling, concatenation, merges and depthwise convolutions: the composite linear map built
as a dense matrix by applying the operations' own TensorFlow definitions to every basis
vector, its nonzero connections counted per input neuron.
"""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from tandem_keras import synops


def _enumerated_fanout(h, w, c, filters, k, s, padding):
    """Counts, for each input neuron, the (output position, tap, filter) triples reading it."""
    index = np.arange(1, h * w * c + 1, dtype=np.float32).reshape(1, h, w, c)
    patches = tf.image.extract_patches(
        index, sizes=[1, k, k, 1], strides=[1, s, s, 1], rates=[1, 1, 1, 1],
        padding=padding.upper(),
    ).numpy().astype(np.int64).ravel()
    # Every patch element is one connection to each of the `filters` output channels;
    # 0 marks padding (no neuron).
    counts = np.bincount(patches, minlength=h * w * c + 1)[1:] * filters
    return counts.reshape(h, w, c)


def _gradient_fanout(h, w, c, filters, k, s, padding):
    x = tf.ones((1, h, w, c))
    kernel = tf.ones((k, k, c, filters))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(tf.nn.conv2d(x, kernel, strides=s, padding=padding.upper()))
    return tape.gradient(y, x).numpy()[0]


CASES = list(itertools.product([(5, 5), (6, 7), (8, 8)], [1, 3, 5], [1, 2, 3], ["same", "valid"]))


@pytest.mark.parametrize("hw,k,s,padding", CASES)
def test_conv_fanout_matches_enumeration(hw, k, s, padding):
    h, w = hw
    if padding == "valid" and k > min(h, w):
        pytest.skip("kernel larger than input")
    got = synops.conv2d_fanout([h, w, 2], 3, k, s, padding)
    np.testing.assert_array_equal(got, _enumerated_fanout(h, w, 2, 3, k, s, padding))


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("s", [1, 2])
def test_conv_fanout_matches_gradient_and_border(s, padding):
    got = synops.conv2d_fanout([7, 6, 3], 4, 3, s, padding)
    np.testing.assert_allclose(got, _gradient_fanout(7, 6, 3, 4, 3, s, padding))


def test_conv_fanout_hand_values():
    # 4x4 input, 3x3 "same", stride 1: corners feed 2x2 outputs, edges 2x3, interior 3x3.
    f = synops.conv2d_fanout([4, 4, 1], 1, 3, 1, "same")[:, :, 0]
    assert f[0, 0] == 4 and f[0, 1] == 6 and f[1, 1] == 9
    # 5 inputs, k=3, s=2, "same": TF pads 1 before and 1 after -> outputs read
    # [pad,0,1], [1,2,3], [3,4,pad] -> coverage 1,2,1,2,1.
    np.testing.assert_array_equal(synops.axis_coverage(5, 3, 2, "same"), [1, 2, 1, 2, 1])
    # 4 inputs, k=3, s=2, "same": n_out = 2, total pad 1 goes after -> [0,1,2], [2,3,pad].
    np.testing.assert_array_equal(synops.axis_coverage(4, 3, 2, "same"), [1, 1, 2, 1])
    # valid, k=2, s=2 on 5: the last input is never read.
    np.testing.assert_array_equal(synops.axis_coverage(5, 2, 2, "valid"), [1, 1, 1, 1, 0])


def test_rectangular_kernel_and_strides():
    spec = {"type": "conv2d", "input_shape": [6, 5, 1], "filters": 2,
            "kernel_size": [3, 1], "strides": [2, 1], "padding": "same"}
    x = tf.ones((1, 6, 5, 1))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(tf.nn.conv2d(x, tf.ones((3, 1, 1, 2)), [1, 2, 1, 1], "SAME"))
    np.testing.assert_allclose(synops.fanout(spec), tape.gradient(y, x).numpy()[0])
    assert synops.output_shape(spec) == (3, 5, 2)


def test_dense_fanout_and_connections():
    spec = {"type": "dense", "input_shape": [7], "units": 5}
    np.testing.assert_array_equal(synops.fanout(spec), np.full(7, 5))
    assert synops.macs(spec) == 35 == synops.connections(spec)


def test_connections_equal_macs_without_padding():
    # "valid" has no padding taps: exact connections == nominal fanin * N.
    spec = {"type": "conv2d", "input_shape": [9, 9, 2], "filters": 3, "kernel_size": 3,
            "strides": 2, "padding": "valid"}
    assert synops.connections(spec) == synops.macs(spec) == 9 * 2 * 4 * 4 * 3
    # "same" with padding: fewer real connections than nominal MACs.
    spec["padding"] = "same"
    assert synops.connections(spec) < synops.macs(spec) == 9 * 2 * 5 * 5 * 3


def test_synops_from_counts_matches_spike_enumeration():
    rng = np.random.default_rng(0)
    t, shape = 4, (2, 5, 5, 2)
    spikes = rng.random((shape[0], t) + shape[1:]) < 0.3  # [batch, T, H, W, C]
    fan = synops.conv2d_fanout(shape[1:], 3, 3, 2, "same")
    # Eq. 13 literally: sum over time, neurons of fanout * s(t).
    expected = [sum(fan[j] * spikes[b, tt][j] for tt in range(t) for j in np.ndindex(fan.shape))
                for b in range(shape[0])]
    got = synops.synops_from_counts(spikes.sum(axis=1), fan)
    np.testing.assert_allclose(got, expected)


def test_energy():
    assert synops.energy_joules(1e9) == pytest.approx(0.9e-3)
    assert synops.energy_joules(0, 1e9) == pytest.approx(4.6e-3)


def test_bad_input():
    with pytest.raises(ValueError, match="padding"):
        synops.conv2d_fanout([4, 4, 1], 1, 3, 1, "causal")
    with pytest.raises(ValueError, match="do not match"):
        synops.synops_from_counts(np.ones((2, 3)), np.ones(4))
    with pytest.raises(ValueError, match="unknown layer spec"):
        synops.fanout({"type": "pool"})
    pool = {"type": "avg_pool2d", "input_shape": [4, 4, 1], "pool_size": 2, "strides": 2,
            "padding": "valid"}
    with pytest.raises(ValueError, match="has no synapses"):
        synops.fanout(pool)
    with pytest.raises(NotImplementedError, match="must end at a weighted"):
        synops.chain_fanout([4, 4, 1], [[pool]], "src")
    flat_then_pool = [dict(pool, input_shape=[2, 8, 1]),
                      {"type": "dense", "input_shape": [1, 4, 1], "units": 2, "layer": "d"}]
    with pytest.raises(NotImplementedError, match="reshaped from"):
        synops.chain_fanout([4, 4, 1], [flat_then_pool], "src")


def _conv(shape, filters, k, s):
    return {"type": "conv2d", "input_shape": list(shape), "filters": filters,
            "kernel_size": k, "strides": s, "padding": "same"}


def _chain(input_shape, convs, dense_units):
    """Specs of a chain of "same" convolutions then dense layers."""
    specs, shape = [], tuple(input_shape)
    for filters, k, s in convs:
        specs.append(_conv(shape, filters, k, s))
        shape = synops.output_shape(specs[-1])
    features = int(np.prod(shape))
    for units in dense_units:
        specs.append({"type": "dense", "input_shape": [features], "units": units})
        features = units
    return specs


# Hand-computed ANN MACs (fan-in x neurons, Eq. 14), all convolutions "same" (method §7).
# CIFARNet, 32x32x3:
#   conv128 s1  27*32*32*128     =   3,538,944
#   conv256 s2  1152*16*16*256   =  75,497,472
#   conv512 s2  2304*8*8*512     =  75,497,472
#   conv1024 s1 4608*8*8*1024    = 301,989,888
#   conv512 s1  9216*8*8*512     = 301,989,888
#   dense1024   32768*1024       =  33,554,432
#   dense10     1024*10          =      10,240      total 792,078,336
CIFARNET_MACS = 792_078_336
# AlexNet for CIFAR-10, 32x32x3:
#   conv96 s1 27*32*32*96 = 2,654,208; conv256 s2 864*16*16*256 = 56,623,104;
#   conv384 s2 2304*8*8*384 = 56,623,104; conv384 s1 3456*8*8*384 = 84,934,656;
#   conv256 s1 3456*8*8*256 = 56,623,104; dense1024 16384*1024 = 16,777,216;
#   dense10 10,240                                               total 274,245,632
ALEXNET_CIFAR_MACS = 274_245_632
# AlexNet for ImageNet, 224x224x3 ("same" everywhere, so 224/4 = 56):
#   conv96 11x11 s4 363*56*56*96 = 109,283,328; conv256 5x5 s2 2400*28*28*256 = 481,689,600;
#   conv384 s2 2304*14*14*384 = 173,408,256; conv384 s1 3456*14*14*384 = 260,112,384;
#   conv256 s2 3456*7*7*256 = 43,352,064; dense4096 12544*4096 = 51,380,224;
#   dense4096 4096*4096 = 16,777,216; dense1000 4096*1000 = 4,096,000  total 1,140,099,072
ALEXNET_IMAGENET_MACS = 1_140_099_072


def test_paper_network_macs():
    cifarnet = _chain((32, 32, 3), [(128, 3, 1), (256, 3, 2), (512, 3, 2), (1024, 3, 1),
                                    (512, 3, 1)], [1024, 10])
    alex_c = _chain((32, 32, 3), [(96, 3, 1), (256, 3, 2), (384, 3, 2), (384, 3, 1),
                                  (256, 3, 1)], [1024, 10])
    alex_i = _chain((224, 224, 3), [(96, 11, 4), (256, 5, 2), (384, 3, 2), (384, 3, 1),
                                    (256, 3, 2)], [4096, 4096, 1000])
    assert sum(map(synops.macs, cifarnet)) == CIFARNET_MACS
    assert sum(map(synops.macs, alex_c)) == ALEXNET_CIFAR_MACS
    assert sum(map(synops.macs, alex_i)) == ALEXNET_IMAGENET_MACS
    assert synops.macs(alex_i[0]) == 109_283_328


# --- composite maps against dense matrices built from the operations' definitions -----

def _apply(spec, x):
    """The operation of ``spec`` on ``x`` [batch, *input_shape] with all weights 1 (TensorFlow)."""
    kind = spec["type"]
    if kind == "avg_pool2d":
        return tf.nn.avg_pool2d(x, spec["pool_size"], spec["strides"], spec["padding"].upper())
    if kind == "global_avg_pool2d":
        return tf.reduce_mean(x, axis=[1, 2], keepdims=spec.get("keepdims", False))
    if kind == "concat":  # this input's slice of the concatenation (the others: zeros)
        pads = [[0, 0]] * len(x.shape)
        axis = spec["axis"] + 1
        pads[axis] = [spec["offset"], spec["size"] - spec["offset"] - x.shape[axis]]
        return tf.pad(x, pads)
    if kind == "conv2d":
        kh, kw = np.broadcast_to(spec["kernel_size"], 2)
        kernel = tf.ones((kh, kw, x.shape[-1], spec["filters"]))
        return tf.nn.conv2d(x, kernel, spec["strides"], spec["padding"].upper(),
                            dilations=spec.get("dilation_rate", 1))
    if kind == "conv1d":
        (k,), (stride,) = np.broadcast_to(spec["kernel_size"], 1), np.broadcast_to(spec["strides"], 1)
        dilation = int(np.broadcast_to(spec.get("dilation_rate", 1), 1)[0])
        padding = spec["padding"]
        if padding == "causal":   # the sequence's start padded, then "valid" (Keras's Conv1D)
            x = tf.pad(x, [[0, 0], [(k - 1) * dilation, 0], [0, 0]])
            padding = "valid"
        return tf.nn.conv1d(x, tf.ones((k, x.shape[-1], spec["filters"])), int(stride), padding.upper(),
                            dilations=dilation)
    if kind == "separable_conv2d":
        kh, kw = np.broadcast_to(spec["kernel_size"], 2)
        m = spec["depth_multiplier"]
        return tf.nn.separable_conv2d(x, tf.ones((kh, kw, x.shape[-1], m)),
                                      tf.ones((1, 1, x.shape[-1] * m, spec["filters"])),
                                      [1, *np.broadcast_to(spec["strides"], 2), 1], spec["padding"].upper())
    if kind == "depthwise_conv2d":
        kh, kw = np.broadcast_to(spec["kernel_size"], 2)
        kernel = tf.ones((kh, kw, x.shape[-1], spec["depth_multiplier"]))
        return tf.nn.depthwise_conv2d(x, kernel, [1, *np.broadcast_to(spec["strides"], 2), 1],
                                      spec["padding"].upper())
    if kind == "dense":
        return tf.tensordot(x, tf.ones((x.shape[-1], spec["units"])), axes=1)
    assert kind == "identity"
    return x


def _brute_force(source_shape, chains):
    """Per input neuron: distinct nonzero outputs of each chain's composite (a dense matrix
    whose column j is the composite applied to the basis vector e_j), chains into the same
    layer united, different layers summed."""
    n = int(np.prod(source_shape))
    basis = np.eye(n, dtype=np.float32)
    reached = {}
    for chain in chains:
        x = tf.constant(basis)
        for spec in chain:
            x = _apply(spec, tf.reshape(x, [n, *spec["input_shape"]]))
        matrix = np.asarray(x).reshape(n, -1) != 0
        key = chain[-1].get("layer", id(chain))
        reached[key] = reached.get(key, False) | matrix
    return sum(m.sum(axis=1) for m in reached.values()).reshape(source_shape)


def _pool(shape, k, s, padding, layer="pool"):
    return {"type": "avg_pool2d", "input_shape": list(shape), "pool_size": [k, k],
            "strides": [s, s], "padding": padding, "layer": layer}


def _conv_spec(shape, filters, k, s, padding, layer="conv", dilation=1):
    spec = {"type": "conv2d", "input_shape": list(shape), "filters": filters,
            "kernel_size": [k, k], "strides": [s, s], "padding": padding, "layer": layer}
    if dilation != 1:
        spec["dilation_rate"] = [dilation, dilation]
    return spec


def _shape_after(spec):
    return list(synops.output_shape(spec))


POOL_CONV = list(itertools.product([(7, 7), (8, 6)], [(2, 2), (3, 2), (3, 1)], ["valid", "same"],
                                   [(3, 1, "same"), (3, 2, "same"), (2, 1, "valid"), (3, 1, "valid")]))


@pytest.mark.parametrize("hw,pool,pool_padding,conv", POOL_CONV)
def test_pooling_then_convolution(hw, pool, pool_padding, conv):
    """Average pooling folded into the next convolution: overlapping and non-overlapping
    windows, borders, strides, both paddings."""
    shape = [*hw, 2]
    p = _pool(shape, *pool, pool_padding)
    pooled = _shape_after(p)
    k, s, padding = conv
    if padding == "valid" and k > min(pooled[:2]):
        pytest.skip("kernel larger than the pooled map")
    chain = [p, _conv_spec(pooled, 3, k, s, padding)]
    np.testing.assert_array_equal(synops.chain_fanout(shape, [chain]), _brute_force(shape, [chain]))


def test_dilated_and_depthwise_convolutions():
    shape = [8, 7, 3]
    for chain in ([_conv_spec(shape, 2, 3, 1, "same", dilation=2)],
                  [_conv_spec(shape, 2, 2, 1, "valid", dilation=3)],
                  [{"type": "depthwise_conv2d", "input_shape": shape, "depth_multiplier": 2,
                    "kernel_size": [3, 3], "strides": [2, 2], "padding": "same"}],
                  [_pool(shape, 2, 1, "same"),
                   {"type": "depthwise_conv2d", "input_shape": shape, "depth_multiplier": 1,
                    "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid"}]):
        np.testing.assert_array_equal(synops.chain_fanout(shape, [chain]),
                                      _brute_force(shape, [chain]))


def test_global_pooling_concat_and_dense():
    shape = [4, 5, 3]
    gap = {"type": "global_avg_pool2d", "input_shape": shape, "keepdims": False}
    cases = [
        [gap, {"type": "dense", "input_shape": [3], "units": 4}],
        [dict(gap, keepdims=True), {"type": "dense", "input_shape": [1, 1, 3], "units": 4}],
        # this source's channels are 2..4 of 7, then a convolution over all 7
        [{"type": "concat", "input_shape": shape, "axis": 2, "offset": 2, "size": 7},
         _conv_spec([4, 5, 7], 2, 3, 2, "same")],
        # concatenated along width (axis 1) then pooled and convolved
        [{"type": "concat", "input_shape": shape, "axis": 1, "offset": 5, "size": 11},
         _pool([4, 11, 3], 2, 2, "valid"), _conv_spec([2, 5, 3], 2, 2, 1, "same")],
        # flattened, concatenated with 10 other features, dense
        [{"type": "concat", "input_shape": [60], "axis": 0, "offset": 10, "size": 70},
         {"type": "dense", "input_shape": [70], "units": 6}],
        # pooled, then a dense map over the last axis only (no flatten)
        [_pool(shape, 2, 2, "same"), {"type": "dense", "input_shape": [2, 3, 3], "units": 5}],
        # valid pooling drops the last column: those neurons reach nothing
        [_pool(shape, 2, 2, "valid"), {"type": "dense", "input_shape": [12], "units": 5}],
        [{"type": "identity", "input_shape": shape}],
    ]
    for chain in cases:
        np.testing.assert_array_equal(synops.chain_fanout(shape, [chain]),
                                      _brute_force(shape, [chain]), err_msg=str(chain))
    dropped = synops.chain_fanout(shape, [cases[6]])
    assert dropped[:, 4].sum() == 0 and np.all(dropped[:, :4] == 5)


def test_several_paths_into_one_layer_are_united():
    """One spike reaching the same convolution twice (an identity and a pooled path added,
    or both halves of a concatenation): distinct synapses only; two layers add up."""
    shape = [6, 6, 2]
    conv = _conv_spec(shape, 3, 3, 1, "same")
    direct, pooled = [conv], [_pool(shape, 3, 1, "same"), conv]
    np.testing.assert_array_equal(synops.chain_fanout(shape, [direct, pooled]),
                                  _brute_force(shape, [direct, pooled]))
    wide = _conv_spec([6, 6, 4], 2, 3, 2, "same")
    halves = [[{"type": "concat", "input_shape": shape, "axis": 2, "offset": o, "size": 4}, wide]
              for o in (0, 2)]
    three = halves + [[_pool(shape, 2, 2, "valid"), dict(_conv_spec([3, 3, 2], 4, 3, 1, "same"),
                                                         layer="other")]]
    np.testing.assert_array_equal(synops.chain_fanout(shape, three), _brute_force(shape, three))
    union = synops.chain_fanout(shape, halves)
    assert np.all(union == synops.chain_fanout(shape, halves[:1]))  # same outputs twice: once


def test_macs_of_new_operations():
    dw = {"type": "depthwise_conv2d", "input_shape": [8, 8, 4], "depth_multiplier": 2,
          "kernel_size": [3, 3], "strides": [2, 2], "padding": "same"}
    assert synops.macs(dw) == 9 * (4 * 4 * 8)            # k_h k_w per output neuron
    assert synops.macs({"type": "identity", "input_shape": [4, 4, 3]}) == 48
    assert synops.macs(_pool([8, 8, 4], 2, 2, "valid")) == 0      # pooling: no weights
    assert synops.macs({"type": "global_avg_pool2d", "input_shape": [8, 8, 4]}) == 0
    dilated = _conv_spec([9, 9, 2], 3, 3, 1, "valid", dilation=2)  # k_eff 5: 5x5 outputs
    assert synops.output_shape(dilated) == (5, 5, 3) and synops.macs(dilated) == 18 * 75


def _conv1d_spec(shape, filters, k, s, padding, dilation=1, layer="conv1d"):
    spec = {"type": "conv1d", "input_shape": list(shape), "filters": filters, "kernel_size": [k],
            "strides": [s], "padding": padding, "layer": layer}
    if dilation != 1:
        spec["dilation_rate"] = [dilation]
    return spec


@pytest.mark.parametrize("k,s,padding,dilation", [(3, 1, "causal", 1), (3, 2, "causal", 1),
                                                  (2, 1, "causal", 3), (3, 2, "same", 1),
                                                  (4, 1, "valid", 2), (5, 3, "same", 1)])
def test_conv1d_fanout_output_shape_and_macs(k, s, padding, dilation):
    """Sequences [L, C]: the fan-out against TensorFlow's conv1d (causal: the start padded),
    the output length and MACs by hand."""
    shape = [11, 3]
    spec = _conv1d_spec(shape, 4, k, s, padding, dilation)
    np.testing.assert_array_equal(synops.chain_fanout(shape, [[spec]]), _brute_force(shape, [[spec]]))
    span = (k - 1) * dilation + 1
    length = -(-11 // s) if padding != "valid" else -(-(11 - span + 1) // s)
    assert synops.output_shape(spec) == (length, 4)
    assert synops.macs(spec) == k * 3 * length * 4


def test_causal_padding_pads_the_start_only():
    assert synops.ops.pads(10, 3, 1, "causal", 2) == (4, 0)
    assert synops.ops.pads(10, 3, 2, "same") == (0, 1) and synops.ops.pads(9, 3, 2, "same") == (1, 1)
    # the last input reaches one output (itself), the first three (outputs 0, 1, 2)
    np.testing.assert_array_equal(synops.axis_coverage(6, 3, 1, "causal"), [3, 3, 3, 3, 2, 1])


@pytest.mark.parametrize("s,padding", [(1, "same"), (2, "same"), (1, "valid")])
def test_separable_convolution_one_linear_map(s, padding):
    """Depthwise then pointwise, one map: a spike reaches every filter at the positions its
    depthwise window covers; MACs of both convolutions."""
    shape = [7, 6, 3]
    spec = {"type": "separable_conv2d", "input_shape": shape, "filters": 5, "depth_multiplier": 2,
            "kernel_size": [3, 3], "strides": [s, s], "padding": padding}
    np.testing.assert_array_equal(synops.chain_fanout(shape, [[spec]]), _brute_force(shape, [[spec]]))
    h, w, _ = synops.output_shape(spec)
    assert synops.output_shape(spec)[-1] == 5
    assert synops.macs(spec) == 9 * (h * w * 3 * 2) + (3 * 2) * (h * w * 5)


def test_conv3d_spec_shapes():
    spec = {"type": "conv3d", "input_shape": [4, 6, 6, 2], "filters": 3, "kernel_size": [3, 3, 3],
            "strides": [1, 2, 2], "padding": "same"}
    assert synops.output_shape(spec) == (4, 3, 3, 3)
    assert synops.macs(spec) == 27 * 2 * (4 * 3 * 3 * 3)
    assert synops.chain_fanout([4, 6, 6, 2], [[spec]]).max() == 3 * 2 * 2 * 3   # depth 3, h, w 2: 3 filters
