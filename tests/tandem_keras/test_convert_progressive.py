"""ProgressiveTandem: stages in topological order, the patience rule, and the hybrid model of
stage k = the SNN up to the k-th spiking layer followed by the ANN on its spike counts."""

import keras
import numpy as np
import pytest

import tandem_keras as tk
from tandem_keras.conversion import ProgressiveTandem, stage_of, stages
from tests.tandem_keras.test_convert import images, randomize_batch_norm, small_resnet

L = keras.layers
T = 3


def chain_ann():
    return randomize_batch_norm(keras.Sequential([
        keras.Input((6, 6, 2)),
        L.Conv2D(4, 3, padding="same", name="c0"), L.BatchNormalization(), L.ReLU(name="r0"),
        L.Conv2D(6, 3, strides=2, name="c1"), L.BatchNormalization(), L.ReLU(name="r1"),
        L.Flatten(name="flat"), L.Dense(8, activation="relu", name="d2"), L.Dense(3, name="out")]))


def test_stages_follow_the_graph_and_attach_layers_without_neurons():
    snn = tk.convert(small_resnet(), time_steps=T)
    groups = stages(snn)
    # encoder; block 1's first conv (spiking) and its second (synapse-only); block 1's
    # residual neuron; block 2's first conv, second conv and projection (synapse-only); block 2's
    # residual neuron and the global average pooling
    assert [len(g) for g in groups] == [1, 2, 1, 3, 2]
    assert [g[0] for g in groups][::2] == ["relu0", "add1", "add2"]
    for group in groups:
        assert "threshold" in snn.get_layer(group[0]).get_config()
        assert getattr(snn.get_layer(group[0]), "neuron", "neurons") is not None
        for name in group[1:]:
            assert getattr(snn.get_layer(name), "neuron", None) is None


def test_layers_per_stage_and_epochs_without_the_monitored_value():
    snn = tk.convert(small_resnet(), time_steps=T)
    assert stages(snn, layers_per_stage=2) == [stages(snn)[0] + stages(snn)[1],
                                               stages(snn)[2] + stages(snn)[3], stages(snn)[4]]
    cb = ProgressiveTandem(monitor="val_loss", layers_per_stage=2, max_epochs_per_stage=2)
    cb.set_model(snn)
    cb.on_train_begin()
    for epoch in range(4):
        cb.on_epoch_end(epoch, {"loss": 1.0} if epoch % 2 == 0 else {"loss": 1.0, "val_loss": 1.0})
    assert stage_of(snn) == 5 and cb.stage == 3 and cb.switches == [1, 3]


def hybrid_reference(ann, snn, k, x):
    """Stage k of a chain: the SNN's spike counts of its k-th spiking layer, times that
    layer's threshold (the ANN's activation), through the rest of the ANN."""
    spiking = [g[0] for g in stages(snn)]
    name = spiking[k - 1]
    counts = np.asarray(keras.Model(snn.input, snn.get_layer(name).output)(x)).sum(axis=1)
    y = counts * snn.get_layer(name).threshold
    relu_names = ["r0", "r1", "d2"]
    start = [layer.name for layer in ann.layers].index(relu_names[k - 1]) + 1
    for layer in ann.layers[start:]:
        y = layer(y)
    return np.asarray(y)


def test_each_stage_is_the_snn_then_the_ann():
    ann = chain_ann()
    x = images((6, 6, 2), n=8, scale=2.0)
    snn = tk.convert(ann, time_steps=T, calibration_data=x)
    cb = ProgressiveTandem(monitor="loss", start_stage=0, max_epochs_per_stage=1)
    cb.set_model(snn)
    cb.on_train_begin()
    assert stage_of(snn) == 0
    np.testing.assert_allclose(snn.predict(x, verbose=0), ann(x), rtol=1e-4, atol=1e-5)  # the ANN
    reference_tandem = tk.convert(ann, time_steps=T, calibration_data=x)
    for k in (1, 2, 3):
        cb.on_epoch_end(k - 1, {"loss": 1.0})
        assert stage_of(snn) == k
        expected = hybrid_reference(ann, reference_tandem, k, x)
        np.testing.assert_allclose(snn.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(snn.predict(x, verbose=0), reference_tandem(x), rtol=1e-5, atol=1e-5)


def test_patience_rule_and_logs():
    snn = tk.convert(chain_ann(), time_steps=T)
    cb = ProgressiveTandem(monitor="val_acc", patience=2, min_delta=0.01)
    cb.set_model(snn)
    cb.on_train_begin()
    assert stage_of(snn) == 1
    stage_after = []
    for epoch, acc in enumerate([0.5, 0.6, 0.605, 0.6, 0.3, 0.2, 0.1, 0.9]):
        logs = {"val_acc": acc}
        cb.on_epoch_end(epoch, logs)
        stage_after.append(stage_of(snn))
        assert logs["progressive_stage"] == (stage_after[-2] if epoch else 1)  # the epoch's stage
    # 0.5 best, 0.6 best, 0.605 and 0.6 not better by 0.01 -> stage 2 after epoch 4;
    # 0.3 best of stage 2, 0.2, 0.1 -> stage 3 (the last) after epoch 7; then it stays
    assert stage_after == [1, 1, 1, 2, 2, 2, 3, 3]
    assert cb.switches == [3, 6]
    with pytest.raises(ValueError, match="monitors 'val_acc'.*loss"):
        cb2 = ProgressiveTandem(monitor="val_acc")
        cb2.set_model(tk.convert(chain_ann(), time_steps=T))
        cb2.on_train_begin()
        cb2.on_epoch_end(0, {"loss": 1.0})


def test_restore_best_weights_when_switching():
    snn = tk.convert(chain_ann(), time_steps=T)
    cb = ProgressiveTandem(monitor="loss", patience=1, restore_best_weights=True)
    cb.set_model(snn)
    cb.on_train_begin()
    best = [w.copy() for w in snn.get_weights()]
    cb.on_epoch_end(0, {"loss": 1.0})
    snn.set_weights([w + 1.0 for w in best])
    cb.on_epoch_end(1, {"loss": 2.0})
    assert stage_of(snn) == 2
    for a, b in zip(snn.get_weights(), best):
        np.testing.assert_array_equal(a, b)


def test_fit_with_the_callback_trains_every_stage():
    ann = chain_ann()
    x = images((6, 6, 2), n=16, scale=2.0)
    y = np.arange(16) % 3
    snn = tk.convert(ann, time_steps=T, calibration_data=x)
    snn.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                run_eagerly=True)
    history = snn.fit(x, y, epochs=4, batch_size=8, verbose=0,
                      callbacks=[ProgressiveTandem(monitor="loss", max_epochs_per_stage=1)])
    assert history.history["progressive_stage"] == [1, 2, 3, 3]
    assert stage_of(snn) == len(stages(snn)) == 3
    assert all(np.isfinite(history.history["loss"]))


def test_a_stage_switched_after_the_last_epoch_is_reported():
    """A fit that ends right after a switch leaves that stage untrained: said in a warning;
    a stage that trained at least one epoch is not reported."""
    import warnings

    snn = tk.convert(chain_ann(), time_steps=T)
    cb = ProgressiveTandem(monitor="loss", max_epochs_per_stage=1)
    cb.set_model(snn)
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 1.0})        # stage 2 starts after epoch 1 and trains epoch 2
    cb.on_epoch_end(1, {"loss": 1.0})        # stage 3 starts after epoch 2, the last
    with pytest.warns(UserWarning, match=r"stage 3 \(d2\) was switched .* never trained"):
        cb.on_train_end()
    cb = ProgressiveTandem(monitor="loss", patience=1)
    cb.set_model(snn)
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 1.0})
    cb.on_epoch_end(1, {"loss": 2.0})        # stage 2 starts after epoch 2 and trains epoch 3
    cb.on_epoch_end(2, {"loss": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cb.on_train_end()
    assert cb.switches == [1]


def test_final_epochs_switch_every_remaining_layer_for_the_last_epochs():
    """final_epochs=n: after epoch (epochs - n) the layers still in ann mode all switch, so
    the last n epochs train the SNN whatever the patience rule says; unit level and in fit."""
    snn = tk.convert(chain_ann(), time_steps=T)
    cb = ProgressiveTandem(monitor="loss", patience=5, final_epochs=2)
    cb.set_model(snn)
    cb.set_params({"epochs": 5, "verbose": 0})
    cb.on_train_begin()
    stage_after = []
    for epoch in range(5):
        cb.on_epoch_end(epoch, {"loss": 1.0 - 0.1 * epoch})   # always improving: no patience switch
        stage_after.append(stage_of(snn))
    assert stage_after == [1, 1, 3, 3, 3] and cb.switches == [2]
    for name in sum(stages(snn), []):
        assert snn.get_layer(name).mode == "tandem"
    with pytest.raises(ValueError, match="final_epochs >= 0"):
        ProgressiveTandem(final_epochs=-1)

    x = images((6, 6, 2), n=16, scale=2.0)
    y = np.arange(16) % 3
    snn = tk.convert(chain_ann(), time_steps=T, calibration_data=x)
    snn.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                run_eagerly=True)
    history = snn.fit(x, y, epochs=4, batch_size=8, verbose=0,
                      callbacks=[ProgressiveTandem(monitor="loss", patience=10, final_epochs=1)])
    assert history.history["progressive_stage"] == [1, 1, 1, 3]
    assert stage_of(snn) == 3
