"""``train``'s private Keras attributes checked against the pinned Keras, and a scan of the
whole tree that finds any other.

``tandem_keras/_keras_internals.py`` (checked in tests/tandem_keras/test_registry.py) and
``train/_keras_internals.py`` (here) hold every use of a private (``_name``) attribute of a
Keras or TensorFlow object; a Keras release that renames one fails in one place. :func:`test_no_private_keras_attribute_outside_the_internals`
reads every module of ``tandem_keras``, ``models``, ``common``, ``train``, ``eval`` and ``bench``
(``ast``) and fails on ``x._name`` (read, write, ``getattr(x, "_name")``) where ``x`` is not
the module's own object: not ``self``/``cls`` (unless ``_name`` is an attribute Keras's own
base classes have), not a name imported from the project's packages.
"""
import ast
import pathlib

import keras
import numpy as np
import tensorflow as tf

from tests.conftest import mirrored_strategy
from train import _keras_internals as train_internals

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("tandem_keras", "models", "common", "train", "eval", "bench")
INTERNALS = {"tandem_keras/_keras_internals.py", "train/_keras_internals.py"}
#: Known exceptions, each with its reason (none may be added without one).
KNOWN: set = set()


# ---------------------------------------------------------------- train._keras_internals
def test_patch_for_multi_worker_clears_the_recorded_strategy_and_adds_an_axis():
    """``keras.Model`` records the scope's strategy as ``_distribute_strategy``; the patch
    clears it, and its steps return the metrics with shape [1]. ``fit`` still trains under
    a (two-CPU, mirrored) strategy with the patch."""
    strategy = mirrored_strategy()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 3)).astype("float32"), rng.normal(size=(16, 1)).astype("float32")
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.1), "mse")
        assert model._distribute_strategy is strategy
        train_internals.patch_for_multi_worker(model)
        assert model._distribute_strategy is None
        step = strategy.run(tf.function(model.train_step), args=((x[:8], y[:8]),))
        for replica in strategy.experimental_local_results(step["loss"]):
            assert tuple(replica.shape) == (1,)
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 2 and all(np.isfinite(losses)) and losses[1] < losses[0]


# ---------------------------------------------------------------- the scan
def _keras_private_names():
    """Private attribute names of Keras's base classes (what ``self._x`` may override)."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    objects = [model, model.layers[0], keras.callbacks.Callback(), model.optimizer,
               keras.metrics.Mean(), keras.layers.BatchNormalization()]
    return {name for obj in objects for name in set(dir(obj)) | set(vars(obj))
            if name.startswith("_") and not name.startswith("__")}


def _project_names(tree):
    """Names a module binds to the project's own modules and objects (imports)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] in PACKAGES:
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names
                         if alias.name.split(".")[0] in PACKAGES)
    return names


def _private_uses(path, keras_names, root=ROOT):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = _project_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name, base = node.attr, node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str)):
            name, base = node.args[1].value, node.args[0]
        else:
            continue
        if not name.startswith("_") or name.startswith("__"):
            continue
        head = base
        while isinstance(head, ast.Attribute):
            head = head.value
        if isinstance(base, ast.Name) and base.id in ("self", "cls"):
            if name not in keras_names:
                continue  # the class's own attribute
        elif isinstance(head, ast.Name) and head.id in own:
            continue  # the project's own module or object
        yield f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(base)}.{name}"


def test_no_private_keras_attribute_outside_the_internals():
    keras_names = _keras_private_names()
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in INTERNALS:
                continue
            found.extend(use for use in _private_uses(path, keras_names)
                         if use.split(":")[0] not in KNOWN)
    assert not found, ("private Keras/TensorFlow attributes outside the _keras_internals "
                       "modules:\n" + "\n".join(found))


def test_the_scan_finds_what_it_looks_for(tmp_path):
    """The scan itself: each form of a private use is found, the project's own are not."""
    source = (
        "import keras\nfrom tandem_keras import activity\n"
        "class L(keras.layers.Layer):\n"
        "    def f(self, model, t):\n"
        "        model._distribute_strategy = None\n"   # a write
        "        n = t._keras_history\n"                # a read
        "        getattr(model, '_initial_epoch', 0)\n"  # a getattr
        "        self._trainable = False\n"             # Keras's own attribute on self
        "        self._mine = 1\n"                      # the class's own
        "        activity._is_spiking(n)\n"             # the project's own module
    )
    path = tmp_path / "m.py"
    path.write_text(source)
    uses = [use.split(": ")[1] for use in _private_uses(path, _keras_private_names(), tmp_path)]
    assert sorted(uses) == sorted(["model._distribute_strategy", "t._keras_history",
                                   "model._initial_epoch", "self._trainable"])


def test_the_internals_modules_exist_and_train_s_cites_this_file():
    assert all((ROOT / relative).is_file() for relative in INTERNALS)
    assert "tests/test_keras_internals.py" in (ROOT / "train/_keras_internals.py").read_text()
