"""The README's residual/pooling example builds, trains a step and runs as a tandem SNN."""
import os
import re

import numpy as np
import tensorflow as tf

import tandem_keras as tk

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def test_readme_residual_and_pooling_example():
    text = open(README, encoding="utf-8").read()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "tk.TandemAdd" in b]
    assert len(blocks) == 1, "README.md has no residual/pooling example"
    namespace = {}
    exec(compile(blocks[0], "README.md residual example", "exec"), namespace)  # noqa: S102
    model = namespace["model"]
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"TandemAdd", "AveragePooling2D", "MaxPooling2D", "GlobalAveragePooling2D"} <= kinds
    x = np.random.default_rng(0).normal(0, 2, (4, 32, 32, 3)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(x, training=True)))
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None and np.isfinite(np.asarray(g)).all() for g in grads)
    assert model.predict(x, verbose=0).shape == (4, 10)
    assert tk.with_mode(model, "ann").predict(x, verbose=0).shape == (4, 10)
