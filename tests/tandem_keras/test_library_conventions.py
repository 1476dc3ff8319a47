"""Library-wide conventions: a non-TensorFlow Keras backend is refused at import in one
line; set_mode switches every tandem_keras layer in place, nested ones included."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tandem_keras as tk

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _import_with(env_extra):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(PYTHONPATH=ROOT, **env_extra)
    return subprocess.run([sys.executable, "-c", "import tandem_keras"], capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.mark.parametrize("backend", ["jax", "torch", "numpy"])
def test_non_tensorflow_backend_refused_in_one_line(backend):
    out = _import_with({"KERAS_BACKEND": backend})
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: tandem_keras needs Keras's TensorFlow backend")
    assert repr(backend) in last and "KERAS_BACKEND=tensorflow" in last


def test_backend_from_keras_json_refused(tmp_path):
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    out = _import_with({"KERAS_HOME": str(tmp_path)})
    assert out.returncode != 0 and "'jax'" in out.stderr.strip().splitlines()[-1]


class Block(keras.layers.Layer):
    """A custom layer holding a tandem layer (not reachable through model.layers)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = tk.TandemDense(4, batch_norm=False, name="inner")

    def call(self, x):
        return self.inner(x)


class Net(keras.Model):
    def __init__(self):
        super().__init__()
        self.encoder = tk.SpikeEncoder(3)
        self.block = Block()
        self.count = tk.SpikeCount()

    def call(self, x):
        return self.count(self.block(self.encoder(x)))


def test_set_mode_switches_nested_layers_and_changes_the_forward_pass():
    net = Net()
    x = np.array([[2.5, 0.4, 1.2, 3.0]], "float32")
    snn = np.asarray(net(x))
    assert tk.set_mode(net, "ann") is net
    assert net.encoder.mode == "ann" and net.block.inner.mode == "ann"
    ann = np.asarray(net(x))
    # ANN mode: the encoder passes the analog value (no floor), the dense layer is a ReLU;
    # with the same weights: relu(W x + b) against the SNN's spike counts of W floor(x).
    kernel, bias = net.block.inner.folded_weights()
    np.testing.assert_allclose(ann, np.maximum(x @ np.asarray(kernel) + np.asarray(bias), 0),
                               rtol=1e-5, atol=1e-5)
    assert np.all(snn == np.round(snn)) and snn.max() <= 3
    tk.set_mode(net, "tandem")
    np.testing.assert_array_equal(np.asarray(net(x)), snn)
    with pytest.raises(ValueError, match="mode"):
        tk.set_mode(net, "rate")


def test_private_attributes_only_in_keras_internals():
    """No library module but _keras_internals reads another object's private attribute
    (``x._name``; ``self._name`` and imports of tandem_keras's private modules aside)."""
    import re

    library = os.path.join(ROOT, "tandem_keras")
    pattern = re.compile(r"(\w+|\)|\])\._[a-z]\w*")
    found = []
    for folder, _, files in os.walk(library):
        for name in files:
            path = os.path.join(folder, name)
            if not name.endswith(".py") or name == "_keras_internals.py":
                continue
            with open(path) as f:
                for number, line in enumerate(f, 1):
                    code = line.split("#")[0]
                    if re.match(r"\s*(from|import) ", code):
                        continue
                    owners = pattern.findall(code.replace("tandem_keras._", "tandem_keras."))
                    if any(owner not in ("self", "cls") for owner in owners):
                        found.append(f"{os.path.relpath(path, ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


def test_with_mode_and_set_mode_switch_a_users_subclass_of_a_tandem_layer():
    """Layers with modes are those of the registry (tandem_keras.kinds), by class hierarchy:
    a user's subclass defined outside the library is switched too."""

    class MyDense(tk.TandemDense):
        pass

    assert MyDense.__module__ != "tandem_keras"
    model = keras.Sequential([keras.Input((3, 4)), MyDense(2, name="mine"), tk.SpikeCount()])
    x = np.ones((1, 3, 4), "float32")
    ann = tk.with_mode(model, "ann")
    assert ann.get_layer("mine").mode == "ann" and ann(x).shape == (1, 2)
    tk.set_mode(model, "quantized")
    assert model.get_layer("mine").mode == "quantized"
    assert tk.export.model_kind(model)["mode"] == "quantized"
