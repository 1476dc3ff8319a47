"""The generic coupling (method §3.2): `couplings.shared_linear`'s gradient is the linear map's
own vector-Jacobian product at the counts for any map (conv, dense, depthwise, pooling),
grappler removes the recomputed forward op from a compiled step, and TandemDepthwiseConv2D,
built on it with no backward of its own, matches NumPy and the coupled ANN's gradient."""
import collections

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import testing

import tandem_keras as tk
from tandem_keras import couplings
from tests.tandem_keras.test_gradients import assert_close
from tests.tandem_keras.test_neurons_reference import (
    assert_spikes_match,
    bn_weights,
    conv2d_np,
    neuron_np,
    random_bn,
    set_layer_weights,
)

EPS = 1e-3

MAPS = {
    "conv": (lambda c, w: tf.nn.conv2d(c, w, 2, "SAME"), (3, 3, 3, 4)),
    "conv1x1": (lambda c, w: tf.nn.conv2d(c, w, 1, "VALID"), (1, 1, 3, 5)),
    "depthwise": (lambda c, w: tf.nn.depthwise_conv2d(c, w, (1, 1, 1, 1), "SAME"), (3, 3, 3, 2)),
    "dense": (lambda c, w: tf.matmul(tf.reshape(c, [c.shape[0], -1]), w), (6 * 6 * 3, 4)),
    "avg_pool": (lambda c: tf.nn.avg_pool2d(c, 2, 2, "VALID"), None),
}


@pytest.mark.parametrize("name", sorted(MAPS))
def test_shared_linear_value_and_gradient_are_the_maps(name):
    op, kernel_shape = MAPS[name]
    rng = np.random.default_rng(0)
    s = (rng.random((4, 5, 6, 6, 3)) < 0.5).astype(np.float32)           # [T, batch, ...]
    counts = tf.constant(s.sum(axis=0))
    args = [counts] + ([tf.constant(rng.normal(size=kernel_shape).astype(np.float32))] if kernel_shape else [])
    summed = sum(op(tf.constant(s[t]), *args[1:]) for t in range(4))   # sum_t L(s(t))
    upstream = tf.constant(rng.normal(size=summed.shape).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(args)
        shared = couplings.shared_linear(op, summed, args)
        direct = op(*args)
    np.testing.assert_allclose(np.asarray(shared), np.asarray(direct), rtol=1e-5, atol=1e-4)
    for got, expected in zip(tape.gradient(shared, args, upstream), tape.gradient(direct, args, upstream)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-6, atol=1e-6)


def _optimized_op_counts(fn, *args):
    """Op types of a tf.function's graph before and after grappler (TensorFlow's own
    optimizer, as a compiled Keras step runs it)."""
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
    from tensorflow.python.grappler import tf_optimizer

    concrete = fn.get_concrete_function(*args)
    graph = concrete.graph
    meta = tf.compat.v1.train.export_meta_graph(graph_def=graph.as_graph_def(add_shapes=True), graph=graph)
    fetch = meta_graph_pb2.CollectionDef()
    fetch.node_list.value.extend(t.name for t in concrete.outputs)
    meta.collection_def["train_op"].CopyFrom(fetch)
    optimized = tf_optimizer.OptimizeGraph(config_pb2.ConfigProto(), meta)
    after = collections.Counter(n.op for n in optimized.node)
    for function in optimized.library.function:
        after.update(n.op for n in function.node_def)
    return collections.Counter(n.op for n in graph.as_graph_def().node), after


@pytest.mark.parametrize("make, shape, forward_op, kept", [
    (lambda: tk.TandemConv2D(4, 3), (4, 3, 8, 8, 2), "Conv2D", 1),
    (lambda: tk.TandemDepthwiseConv2D(3, depth_multiplier=2), (4, 3, 8, 8, 2), "DepthwiseConv2dNative", 1),
    (lambda: tk.TandemDense(4), (4, 3, 6), "MatMul", 3),     # forward + the two VJP products
])
def test_grappler_prunes_the_recomputed_forward_op(make, shape, forward_op, kept):
    """The custom gradient differentiates the map at the counts, which builds a second
    forward op; nothing reads its output, and grappler removes it: a compiled training
    step runs the fused forward only once."""
    layer = make()
    x = (np.random.default_rng(1).random(shape) < 0.5).astype(np.float32)
    layer(x)

    @tf.function
    def step(s):
        with tf.GradientTape() as tape:
            tape.watch(s)
            loss = tf.reduce_sum(layer(s, training=True) * tf.range(1.0, 4.0)[:, None] if len(shape) == 3
                                 else layer(s, training=True) * tf.range(1.0, 4.0)[:, None, None, None])
        return tape.gradient(loss, [layer.kernel, s])

    before, after = _optimized_op_counts(step, tf.constant(x))
    assert (before[forward_op], after[forward_op]) == (kept + 1, kept)


# ----------------------------------------------------------------------------- depthwise layer
def depthwise_np(x, kernel, strides=1, padding="same"):
    """x [N, H, W, C], kernel [k, k, C, m] -> [N, H', W', C m], channel c m + j."""
    outs = [conv2d_np(x[..., c:c + 1], kernel[:, :, c:c + 1, j:j + 1], strides, padding)
            for c in range(x.shape[-1]) for j in range(kernel.shape[-1])]
    return np.concatenate(outs, axis=-1)


@pytest.mark.parametrize("strides, padding", [(1, "same"), (2, "valid")])
def test_depthwise_forward_against_numpy(strides, padding):
    rng = np.random.default_rng(2)
    t_steps = 5
    x = (rng.random((3, t_steps, 7, 7, 3)) < 0.4).astype(np.float32)
    layer = tk.TandemDepthwiseConv2D(3, strides=strides, padding=padding, depth_multiplier=2,
                                     neuron=tk.neurons.LIF(0.75, 0.25), epsilon=EPS)
    layer(x)
    kernel = rng.normal(0, 0.8, (3, 3, 3, 2)).astype(np.float32).astype(np.float64)
    bias = rng.normal(0.2, 0.5, 6).astype(np.float32).astype(np.float64)
    bn = random_bn(rng, 6, scale=2.0, eps=EPS)
    set_layer_weights(layer, kernel=kernel, bias=bias, **bn_weights(bn))
    out = np.asarray(layer(x))
    g = bn["gamma"] / np.sqrt(bn["moving_variance"] + EPS)
    folded_bias = (bias - bn["moving_mean"]) * g + bn["beta"]
    flat = x.reshape((-1,) + x.shape[2:]).astype(np.float64)
    z = depthwise_np(flat, kernel, strides, padding) * g + folded_bias / t_steps
    expected, margin = neuron_np(z.reshape((3, t_steps) + z.shape[1:]), 1.0, 0.75, 0.25)
    assert_spikes_match(out, expected, margin)
    assert 0.05 < expected.mean() < 0.95
    k, b = layer.folded_weights()                  # W' = W g on the C m output channels
    np.testing.assert_allclose(np.asarray(k), kernel * g.reshape(3, 2), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(b), folded_bias, rtol=1e-5, atol=1e-6)


def test_depthwise_gradient_is_the_coupled_ann():
    rng = np.random.default_rng(3)
    t_steps = 4
    x = (rng.random((6, t_steps, 6, 6, 2)) < 0.5).astype(np.float32)
    layer = tk.TandemDepthwiseConv2D(3, depth_multiplier=2, use_bias=False, epsilon=EPS)
    layer(x)
    kernel = rng.normal(0, 0.8, (3, 3, 2, 2)).astype(np.float32).astype(np.float64)
    bn = random_bn(rng, 4, scale=2.0, eps=EPS)
    set_layer_weights(layer, kernel=kernel, **bn_weights(bn))
    r = rng.normal(size=(6, t_steps, 6, 6, 4)).astype(np.float32)
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        loss = tf.reduce_sum(layer(x_t, training=True) * r)
    got = tape.gradient(loss, [layer.kernel, layer.gamma, layer.beta, x_t])
    c = tf.constant(x.sum(axis=1).astype(np.float64))
    w, g, b = (tf.Variable(v) for v in (kernel, bn["gamma"], bn["beta"]))
    with tf.GradientTape() as tape:
        tape.watch(c)
        u = tf.nn.depthwise_conv2d(c, w, (1, 1, 1, 1), "SAME")
        mean, var = tf.nn.moments(u, axes=[0, 1, 2])
        vf = g * (u - mean) / tf.sqrt(var + EPS) + b
        ref_loss = tf.reduce_sum(tf.clip_by_value(vf, 0.0, float(t_steps)) * r.mean(axis=1))
    ref = tape.gradient(ref_loss, [w, g, b, c])
    assert np.abs(np.asarray(vf)).min() > 1e-4 and np.abs(np.asarray(vf) - t_steps).min() > 1e-4
    for name, actual, expected in zip(["kernel", "gamma", "beta"], got, ref):
        assert_close(np.asarray(actual), np.asarray(expected), name)
    assert_close(np.asarray(got[3]), np.broadcast_to(np.asarray(ref[3])[:, None], x.shape), "input")


def test_depthwise_keeps_keras_arguments_and_round_trips(tmp_path):
    import inspect

    keras_args = set(inspect.signature(keras.layers.DepthwiseConv2D.__init__).parameters) - {
        "self", "kwargs", "lora_rank", "lora_alpha", "quantization_config"}
    params = set()
    for klass in tk.TandemDepthwiseConv2D.__mro__:
        if "__init__" in klass.__dict__ and klass is not keras.layers.Layer:
            params |= set(inspect.signature(klass.__init__).parameters)
        if klass is keras.layers.Layer:
            break
    assert keras_args <= params, sorted(keras_args - params)
    model = keras.Sequential([keras.Input((4, 6, 6, 3)), tk.TandemDepthwiseConv2D(3, name="dw"),
                              tk.SpikeCount()])
    x = (np.random.default_rng(4).random((2, 4, 6, 6, 3)) < 0.5).astype(np.float32)
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(keras.models.load_model(tmp_path / "m.keras").predict(x, verbose=0),
                                  model.predict(x, verbose=0))
    for mode in tk.MODES:
        assert tk.with_mode(model, mode).get_layer("dw").mode == mode


class DepthwiseLayerTest(testing.TestCase):
    def test_run_layer_test(self):
        x = (np.random.default_rng(5).random((2, 3, 6, 6, 4)) < 0.5).astype(np.float32)
        self.run_layer_test(tk.TandemDepthwiseConv2D, init_kwargs={"kernel_size": 3, "depth_multiplier": 2},
                            input_data=x, expected_output_shape=(2, 3, 6, 6, 8),
                            expected_num_trainable_weights=4, expected_num_non_trainable_weights=2)


def test_attached_ann_value_same_gradients_and_the_watch_escape():
    """Between library layers the next layer reads the producer's count (its ANN value)
    instead of summing the train: the same gradients of every weight and of the model's
    input as through the train itself (tf.identity strips the attached value); a watched
    intermediate train gets its gradient when it is fed on as tf.identity(train)."""
    rng = np.random.default_rng(6)
    x = tf.constant((rng.random((8, 4, 9)) < 0.5).astype(np.float32))
    l1, l2 = tk.TandemDense(7, epsilon=EPS), tk.TandemDense(5, epsilon=EPS)
    l2(l1(x))
    r = tf.constant(rng.normal(size=(8, 4, 5)).astype(np.float32))

    def grads(strip):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = l1(x, training=True)
            assert (couplings.attached_value(y) is not None) and couplings.attached_value(tf.identity(y)) is None
            y = tf.identity(y) if strip else y
            tape.watch(y)
            loss = tf.reduce_sum(l2(y, training=True) * r)
        return tape.gradient(loss, l1.trainable_weights + l2.trainable_weights + [x, y])

    direct, stripped = grads(False), grads(True)
    for a, b in zip(direct[:-1], stripped[:-1]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)
    assert np.abs(np.asarray(direct[-2])).max() > 0
    assert direct[-1] is None                                   # not formed between library layers
    per_step = np.asarray(stripped[-1])                         # the count's gradient at every step
    np.testing.assert_allclose(per_step, np.broadcast_to(per_step[:, :1], per_step.shape))
