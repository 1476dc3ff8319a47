"""Shared test set-up: quiet TensorFlow, two logical CPUs for distribution tests."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:  # already initialized by an earlier import
    pass


_MIRRORED = []


def mirrored_strategy():
    """The process's one two-CPU MirroredStrategy (a second instance in the same process
    collides with the first one's collective keys: "Shape mismatch in the collective")."""
    if not _MIRRORED:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
        if len(devices) < 2:
            pytest.skip("two logical CPUs are not available")
        _MIRRORED.append(tf.distribute.MirroredStrategy(devices))
    return _MIRRORED[0]


@pytest.fixture(params=["default", "mirrored"])
def strategy(request):
    """Runs a test once without and once under a two-CPU MirroredStrategy."""
    if request.param == "default":
        return tf.distribute.get_strategy()
    return mirrored_strategy()


SHARED_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared")


@pytest.fixture
def shared_dir():
    """Path of ../shared (CIFAR-10 JPEGs); skips the test when it is absent."""
    path = os.path.abspath(SHARED_DIR)
    if not os.path.isdir(os.path.join(path, "data")):
        pytest.skip("../shared/data is not available")
    return path
