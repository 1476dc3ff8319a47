"""Built layers refuse inputs they would silently corrupt (issue 9, item 6).

A tandem layer folds time into the batch with the T it was built with, so another T must
be refused (not re-split); its rank and last axis are its InputSpec; inference inputs must
be spikes (0/1, finite); the encoder refuses NaN/inf instead of encoding them as silence.
"""
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk

DENSE_X = np.zeros((2, 4, 5), np.float32)
CONV_X = np.zeros((2, 4, 6, 6, 3), np.float32)


def built(kind, **kwargs):
    if kind == "dense":
        layer = tk.TandemDense(3, name="fc", **kwargs)
        layer(DENSE_X)
        return layer, DENSE_X
    layer = tk.TandemConv2D(2, 3, name="conv", **kwargs)
    layer(CONV_X)
    return layer, CONV_X


def with_time_steps(x, time_steps):
    return np.zeros((x.shape[0], time_steps) + x.shape[2:], np.float32)


# ----------------------------------------------------------------------------- time axis
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_other_time_steps_refused_eagerly_symbolically_and_traced(kind):
    layer, x = built(kind)
    other = with_time_steps(x, 8)
    pattern = rf"{layer.name} \({type(layer).__name__}\) was built for T=4 .* T=8"
    with pytest.raises(ValueError, match=pattern):
        layer(other)                                            # the issue's [2, 8, 5] case
    with pytest.raises(ValueError, match=pattern):
        layer(keras.Input(other.shape[1:]))                     # building a model
    with pytest.raises(ValueError, match=pattern):
        tf.function(lambda s: layer(s, training=False))(tf.constant(other))
    assert layer.input_spec.ndim == x.ndim and layer.input_spec.axes == {-1: x.shape[-1]}


def test_unknown_time_axis_checked_at_run_time():
    layer, x = built("dense")
    fn = tf.function(lambda s: layer(s, training=False),
                     input_signature=[tf.TensorSpec([None, None, 5], tf.float32)])
    assert fn(tf.constant(x)).shape == (2, 4, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"fc \(TandemDense\) was built for T=4"):
        fn(tf.constant(with_time_steps(x, 8)))


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_other_channels_and_rank_after_build_refused_naming_the_layer(kind):
    layer, x = built(kind)
    wrong_channels = np.zeros(x.shape[:-1] + (x.shape[-1] + 1,), np.float32)
    with pytest.raises(ValueError, match=rf"layer '{layer.name}'.*axis -1 .* value {x.shape[-1]}"):
        layer(wrong_channels)
    with pytest.raises(ValueError, match=rf"layer '{layer.name}'.*expected ndim={x.ndim}"):
        layer(x[:, 0])


@pytest.mark.parametrize("make, shape", [(lambda: tk.TandemDense(3, name="fc"), (2, 5)),
                                         (lambda: tk.TandemConv2D(2, 3, name="conv"), (2, 6, 6, 3)),
                                         (lambda: tk.SpikeCount(name="count"), (2, 5)),
                                         (lambda: tk.TimeFlatten(name="flat"), (2, 5)),
                                         (lambda: tk.SpikeEncoder(4, name="enc"), (5,))])
def test_wrong_rank_at_build_names_the_layer(make, shape):
    layer = make()
    with pytest.raises(ValueError, match=rf"^{layer.name} \({type(layer).__name__}\) expects"):
        layer(np.zeros(shape, np.float32))


def test_ann_mode_sums_any_time_axis():
    """mode="ann" reads the sum over time (length 1 between ANN layers): no T is fixed."""
    layer = tk.TandemDense(3, mode="ann", batch_norm=False)
    rng = np.random.default_rng(0)
    x = rng.random((2, 1, 5)).astype(np.float32)
    layer(x)
    x4 = np.repeat(x / 4, 4, axis=1)
    np.testing.assert_allclose(np.asarray(layer(x4)), np.asarray(layer(x)), rtol=1e-5, atol=1e-6)


def test_readout_layers_sum_or_keep_any_time_axis_but_fix_the_step_shape():
    rng = np.random.default_rng(1)
    count, flat = tk.SpikeCount(name="count"), tk.TimeFlatten(name="flat")
    count(np.zeros((2, 4, 3, 3, 2), np.float32))
    flat(np.zeros((2, 4, 3, 3, 2), np.float32))
    s = (rng.random((2, 7, 3, 3, 2)) < 0.5).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(count(s)), s.sum(axis=1))
    np.testing.assert_array_equal(np.asarray(flat(s)), s.reshape(2, 7, 18))
    for layer in (count, flat):
        with pytest.raises(ValueError, match=rf"layer '{layer.name}'.*axis 2"):
            layer(np.zeros((2, 4, 4, 3, 2), np.float32))


def test_keras_file_round_trip_keeps_the_checks(tmp_path):
    model = keras.Sequential([keras.Input((6, 6, 3)), tk.SpikeEncoder(4, name="enc"),
                              tk.TandemConv2D(2, 3, name="conv"), tk.TimeFlatten(),
                              tk.TandemDense(3, name="fc"), tk.SpikeCount(), keras.layers.Dense(2)])
    x = np.random.default_rng(2).random((3, 6, 6, 3)).astype(np.float32) * 5
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    fc = loaded.get_layer("fc")
    assert fc.time_steps == 4 and fc.input_spec.axes == {-1: 72}
    with pytest.raises(ValueError, match="was built for T=4"):
        fc(np.zeros((1, 8, 72), np.float32))


# ----------------------------------------------------------------------------- spike values
@pytest.mark.parametrize("bad", [0.5, np.nan, np.inf, -1.0, 2.0])
@pytest.mark.parametrize("mode", ["tandem", "quantized", "bptt"])
def test_non_spike_values_refused_eagerly(bad, mode):
    layer, x = built("dense", mode=mode)
    spikes = (np.random.default_rng(3).random(x.shape) < 0.5).astype(np.float32)
    layer(spikes)                                    # 0/1 passes
    spikes[1, 2, 3] = bad
    with pytest.raises(ValueError, match=r"fc \(TandemDense\) expects a spike train \(values 0/1\)"):
        layer(spikes)


def test_non_spike_values_refused_in_compiled_predict_and_in_the_export(tmp_path):
    model = keras.Sequential([keras.Input((4, 5)), tk.TandemDense(3, name="fc"), tk.SpikeCount()])
    half = np.full((2, 4, 5), 0.5, np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"fc \(TandemDense\) expects a spike train"):
        model.predict(half, verbose=0)
    model.export(str(tmp_path / "export"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    serve = loaded.serve
    assert serve(tf.zeros([2, 4, 5])).shape == (2, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expects a spike train"):
        serve(tf.constant(half))


def test_training_inputs_are_not_value_checked():
    """Inverted dropout between layers scales spikes to 1/(1-rate) in training."""
    layer, x = built("dense")
    scaled = np.where(np.random.default_rng(4).random(x.shape) < 0.5, 2.0, 0.0).astype(np.float32)
    assert layer(scaled, training=True).shape == (2, 4, 3)


def test_analog_input_accepts_currents_in_unit_interval_only():
    enc = tk.SpikeEncoder(4, encoding="current")
    layer = tk.TandemDense(3, analog_input=True, name="first")
    current = enc(np.array([[0.3, 1.7, 9.0, -2.0, 2.2]], np.float32))
    assert 0 < float(tf.reduce_min(tf.where(current > 0, current, 1.0))) < 1
    assert layer(current).shape == (1, 4, 3)
    assert tk.TandemDense.from_config(layer.get_config()).analog_input
    for bad in (1.5, np.nan, -0.1):
        with pytest.raises(ValueError, match=r"first \(TandemDense\) expects finite values in \[0, 1\]"):
            layer(np.full((1, 4, 5), bad, np.float32))
    with pytest.raises(ValueError, match="expects a spike train"):
        tk.TandemDense(3)(current)


# ----------------------------------------------------------------------------- encoder
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("encoding", ["spike", "current"])
def test_encoder_refuses_non_finite_input(bad, encoding):
    enc = tk.SpikeEncoder(4, encoding=encoding, name="enc")
    v = np.ones((2, 3), np.float32)
    v[1, 2] = bad
    with pytest.raises(ValueError, match=r"enc \(SpikeEncoder\) was fed NaN or inf values.*1 of 6"):
        enc(v)
    model = keras.Sequential([keras.Input((3,)), enc])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"enc \(SpikeEncoder\) was fed NaN or inf"):
        model.predict(v, verbose=0)
    assert enc(v, training=True).shape == (2, 4, 3)  # in training it shows as a NaN loss


def _assert_ops(model, x):
    fn = tf.function(lambda s: model(s, training=False))
    graph = fn.get_concrete_function(tf.constant(x)).graph
    scopes = [op.name.split("/")[-3] for op in graph.get_operations() if op.type == "Assert"]
    return sorted(re.sub(r"_\d+$", "", scope) for scope in scopes)   # "enc_1" -> "enc"


def test_library_spike_trains_are_not_rechecked_but_foreign_layers_outputs_are():
    """Spikes made by the encoder or an IF layer are 0/1 by construction and the library's
    pooled trains are exact currents; the model's graph shows it (no check); a layer of
    unknown kind between two tandem layers makes a tensor that is checked."""
    x = np.random.default_rng(5).random((2, 6, 6, 3)).astype(np.float32) * 4
    plain = keras.Sequential([keras.Input((6, 6, 3)), tk.SpikeEncoder(4, name="enc"),
                              tk.TandemConv2D(2, 3, name="conv"), tk.TimeFlatten(),
                              tk.TandemDense(3, name="fc"), tk.SpikeCount()])
    assert _assert_ops(plain, x) == ["enc"]
    library = keras.Sequential([keras.Input((6, 6, 3)), tk.SpikeEncoder(4, name="enc"),
                                tk.TandemConv2D(2, 3, name="conv"), tk.AveragePooling2D(2),
                                tk.TandemConv2D(2, 3, name="conv2"), tk.MaxPooling2D(1),
                                tk.TandemConv2D(2, 3, name="conv3"), tk.SpikeCount()])
    assert _assert_ops(library, x) == ["enc"]
    # Keras layers the registry knows keep spikes spikes (an OR, a padding): not checked
    known = keras.Sequential([keras.Input((6, 6, 3)), tk.SpikeEncoder(4, name="enc"),
                              tk.TandemConv2D(2, 3, name="conv"),
                              keras.layers.TimeDistributed(keras.layers.MaxPooling2D(2)),
                              keras.layers.TimeDistributed(keras.layers.ZeroPadding2D(1)),
                              tk.TandemConv2D(2, 3, name="conv2"), tk.SpikeCount()])
    assert _assert_ops(known, x) == ["enc"]
    foreign = keras.Sequential([keras.Input((6, 6, 3)), tk.SpikeEncoder(4, name="enc"),
                                tk.TandemConv2D(2, 3, name="conv"),
                                keras.layers.Lambda(lambda s: 1.0 - s),   # unknown to the registry
                                tk.TandemConv2D(2, 3, name="conv2"), tk.SpikeCount()])
    assert _assert_ops(foreign, x) == ["conv2", "enc"]


@pytest.mark.parametrize("pool", [lambda: keras.layers.AveragePooling3D((1, 2, 2), name="avg"),
                                  lambda: keras.layers.TimeDistributed(
                                      keras.layers.AveragePooling2D(2), name="avg")])
def test_keras_average_pooling_into_a_tandem_layer_refused_at_build_unless_analog(pool):
    inputs = keras.Input((4, 6, 6, 2))
    pooled = pool()(inputs)
    with pytest.raises(ValueError, match=r"^after_avg \(TandemConv2D\) is fed by 'avg' .*averages of "
                                         r"spikes are not spikes; use tk.AveragePooling2D .*"
                                         r"analog_input=True"):
        tk.TandemConv2D(2, 3, name="after_avg")(pooled)
    model = keras.Model(inputs, tk.TandemConv2D(2, 3, analog_input=True)(pooled))
    spikes = np.zeros((2, 4, 6, 6, 2), np.float32)
    spikes[:, :, 0, 0, 0] = 1.0                     # one spike in a 2x2 window -> 0.25
    assert model.predict(spikes, verbose=0).shape == (2, 4, 3, 3, 2)


def test_untagged_non_spikes_refused_at_inference_naming_the_alternatives():
    """An eager call (no model graph to inspect) reaches the value check, whose message
    names tk.AveragePooling2D, tk.TandemAdd and analog_input=True."""
    layer = tk.TandemConv2D(2, 3, name="after_avg")
    spikes = np.zeros((2, 4, 6, 6, 2), np.float32)
    spikes[:, :, 0, 0, 0] = 0.25
    with pytest.raises(ValueError, match=r"after_avg \(TandemConv2D\) expects a spike train .*; 8 of "
                                         r"576 values are not 0/1 \(e.g. 0.25.*tk.TandemAdd.*"
                                         r"tk.AveragePooling2D.*analog_input=True"):
        layer(spikes)


def test_keras_internals_producer_against_the_pinned_keras():
    """`_keras_internals.producer`: the layer call that made a symbolic tensor and its inputs."""
    from tandem_keras._keras_internals import producer

    inputs = keras.Input((4, 6, 6, 2))
    pool = keras.layers.TimeDistributed(keras.layers.AveragePooling2D(2))
    pooled = pool(inputs)
    layer, parents = producer(pooled)
    assert layer is pool and len(parents) == 1 and parents[0] is inputs
    assert producer(inputs) == (None, [])
    assert producer(np.zeros((1, 2))) == (None, []) and producer(tf.zeros((1, 2))) == (None, [])
