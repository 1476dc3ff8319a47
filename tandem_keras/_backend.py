"""Refuses, at import, a Keras backend other than TensorFlow (one line saying why).

The tandem layers use ``tf.custom_gradient``, ``tf.distribute`` and TensorFlow's
SavedModel; under JAX, PyTorch or NumPy Keras they would fail later, deep inside a layer
(or inside Keras's own import, when that backend's package is missing). The backend is
read as Keras reads it: from an already imported ``keras``, else ``KERAS_BACKEND``, else
``$KERAS_HOME/keras.json`` (default ``~/.keras/keras.json``), else TensorFlow.
"""

import json
import os
import sys


def configured_backend() -> str:
    """The backend Keras runs (or will run) on."""
    if "keras" in sys.modules and hasattr(sys.modules["keras"], "backend"):
        return sys.modules["keras"].backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def require_tensorflow_backend() -> None:
    """Raises ``ImportError`` unless Keras runs on the TensorFlow backend."""
    backend = configured_backend()
    if backend != "tensorflow":
        raise ImportError(
            f"tandem_keras needs Keras's TensorFlow backend, but Keras is set to run on "
            f"{backend!r}: set KERAS_BACKEND=tensorflow (or \"backend\" in keras.json)")


require_tensorflow_backend()
