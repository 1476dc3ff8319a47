"""The README's "Bring your own model" example runs as written: the converted SNN computes
the ANN in ann mode and is accurate after its tandem fine-tuning."""
import os
import re

import numpy as np
import pytest

import tandem_keras as tk

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def test_readme_conversion_example():
    pytest.importorskip("sklearn")
    text = open(README, encoding="utf-8").read()
    section = text[text.index("## Bring your own model"):]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    namespace = {}
    exec(compile(block, "README.md conversion example", "exec"), namespace)  # noqa: S102
    ann, snn, x, y = (namespace[k] for k in ("ann", "snn", "x", "y"))
    assert [type(layer).__name__ for layer in snn.layers] == [
        "InputLayer", "Conv2D", "BatchNormalization", "SpikeEncoder", "TandemConv2D",
        "TimeFlatten", "SpikeCount", "Dense"]
    predictions = np.asarray(snn.predict(x[1500:], verbose=0)).argmax(axis=1)
    assert (predictions == y[1500:]).mean() >= 0.9
