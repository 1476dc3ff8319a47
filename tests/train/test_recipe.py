"""train.recipe: the one learning-rate schedule and compile of python -m train and the reproduction."""
import keras
import numpy as np
import pytest

from train import recipe
from train.config import TrainConfig


def _rates_used(schedule, updates: int) -> np.ndarray:
    """The rate each of ``updates`` SGD updates applied: w starts at 0, the gradient is -1,
    so the k-th update adds exactly its learning rate to w (Keras's own step counting)."""
    w = keras.Variable(np.float64(0.0), dtype="float64")
    opt = keras.optimizers.SGD(learning_rate=schedule)
    before, used = 0.0, []
    for _ in range(updates):
        opt.apply_gradients([(keras.ops.convert_to_tensor(-1.0, "float64"), w)])
        now = float(w.numpy())
        used.append(now - before)
        before = now
    return np.asarray(used)


@pytest.mark.parametrize("steps_per_epoch, step_epochs, epochs", [(3, 2, 7), (1, 1, 4), (5, 3, 6)])
def test_step_schedule_multiplies_at_the_first_update_of_every_kth_epoch(steps_per_epoch,
                                                                          step_epochs, epochs):
    """"x0.1 every E epochs": update i belongs to epoch i // steps_per_epoch and must use
    lr * 0.1 ** (epoch // E), counted by the optimizer itself, not by calling the schedule."""
    values = TrainConfig(learning_rate=1.0, lr_schedule="step", lr_step_epochs=step_epochs,
                         lr_step_factor=0.1, epochs=epochs)
    updates = epochs * steps_per_epoch
    used = _rates_used(recipe.learning_rate(values, steps_per_epoch), updates)
    epoch = np.arange(updates) // steps_per_epoch
    np.testing.assert_allclose(used, 0.1 ** (epoch // step_epochs), rtol=1e-6)


def test_boundaries_at_b_would_keep_the_old_rate_one_update_too_long():
    """The reproduction's former boundaries (b instead of b - 1): the first update of epoch E
    still used the old rate. The reference above tells the two apart."""
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([3], [1.0, 0.1])  # E=1, 3 steps
    used = _rates_used(schedule, 6)
    assert used[3] == pytest.approx(1.0) and used[4] == pytest.approx(0.1)


def test_cosine_and_constant():
    values = TrainConfig(learning_rate=2.0, lr_schedule="cosine", epochs=2)
    used = _rates_used(recipe.learning_rate(values, 4), 8)
    np.testing.assert_allclose(used, 2.0 * (1 + np.cos(np.pi * np.arange(8) / 8)) / 2, rtol=1e-5)
    assert recipe.learning_rate(TrainConfig(learning_rate=2.0, lr_schedule="constant"), 4) == 2.0


def test_compiled_model_follows_the_configuration():
    values = TrainConfig(model="cifarnet", time_steps=2, decode="spike_count", mode="quantized",
                         dropout=0.0, width_divisor=32, learning_rate=1e-3,
                         lr_schedule="constant", epochs=1, run_eagerly=True)
    model = recipe.compiled_model(values, (16, 16, 3), 3, steps_per_epoch=2)
    assert model.get_layer("tandem_conv1").filters == 256 // 32
    assert model.get_layer("tandem_conv1").mode == "quantized"
    assert model.output.shape == (None, 3)
    assert model.run_eagerly and isinstance(model.optimizer, keras.optimizers.Adam)
    metrics = model.get_compile_config()["metrics"]
    assert [m["config"]["name"] for m in metrics] == ["top1", "top3"]


def test_ema_momentum_ends_fit_with_the_moving_average_of_the_trained_weights():
    """``ema_momentum`` m > 0: after ``fit`` the weights are the average a NumPy loop makes of
    the weights after every update, avg_1 = w_1, avg_k = m avg_{k-1} + (1 - m) w_k."""
    m = 0.6
    config = TrainConfig(learning_rate=0.05, lr_schedule="constant", epochs=1, ema_momentum=m)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    recipe.compile_model(model, config, num_classes=2, steps_per_epoch=5)
    assert model.optimizer.use_ema and model.optimizer.ema_momentum == m
    trained = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            trained.append([w.numpy().copy() for w in model.trainable_weights])

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 3)).astype("float32"), rng.integers(0, 2, 10)
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0, callbacks=[Record()])
    assert len(trained) == 5
    average = trained[0]
    for weights in trained[1:]:
        average = [m * a + (1 - m) * w for a, w in zip(average, weights)]
    for got, want, last in zip(model.get_weights(), average, trained[-1]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        assert not np.allclose(got, last)   # the average, not the last update's weights


def test_no_ema_by_default():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    recipe.compile_model(model, TrainConfig(), num_classes=2, steps_per_epoch=5)
    assert not model.optimizer.use_ema
