"""Helpers shared by the training tests (not a test module)."""
import glob
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

import tandem_keras  # noqa: F401  (registers the layers for keras.models.load_model)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_m_train(*args, env=None, **popen):
    """Starts ``python -m train ARGS`` from the project root; returns the Popen."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "train", *args], cwd=ROOT, env=full_env,
                            text=True, **popen)


def tensorboard_tags(log_dir):
    """All scalar tags written under ``log_dir`` (every events file, recursively)."""
    tags = set()
    for path in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


def check_export(export_dir, images, model=None):
    """The SavedModel's logits equal the Keras model's (the given one, else model.keras)."""
    keras_model = keras.models.load_model(os.path.join(export_dir, "model.keras"))
    expected = np.asarray(keras_model(images, training=False))
    if model is not None:
        np.testing.assert_allclose(np.asarray(model(images, training=False)), expected,
                                   rtol=1e-5, atol=1e-5)
    loaded = tf.saved_model.load(export_dir)
    np.testing.assert_allclose(np.asarray(loaded.serve(images)), expected, rtol=1e-5, atol=1e-5)
    serving = loaded.signatures["serving_default"]
    (out,) = serving(tf.constant(images)).values()
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-5)
    activity = loaded.serve_activity(images)
    np.testing.assert_allclose(np.asarray(activity["logits"]), expected, rtol=1e-5, atol=1e-5)
    return keras_model, activity


def read_only(folder, argv):
    """``argv`` made to run with ``folder`` read-only: ``chmod 555`` for a user, and for root
    (whom a mode does not stop) a read-only bind mount of it in a private mount namespace
    (``unshare``); skips the test when neither can be made here."""
    import shutil

    import pytest

    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
        return list(argv)
    mount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && '
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", mount + '! touch "$0/.probe" 2>/dev/null',
                            str(folder)], capture_output=True, text=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("running as root without a way to make a folder read-only here (unshare -rm "
                    f"and a read-only bind mount): {probe.stderr.strip() if probe else 'no unshare'}")
    return ["unshare", "-rm", "sh", "-c", mount + 'exec "$@"', str(folder), *argv]
