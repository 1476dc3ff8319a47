"""The README's Python example runs as written and trains an SNN that works."""
import os
import re

import numpy as np
import pytest

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


@pytest.mark.slow
def test_readme_example_trains_an_accurate_snn(capsys):
    text = open(README, encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README.md has no ```python example"
    namespace = {}
    exec(compile(blocks[0], "README.md example", "exec"), namespace)  # noqa: S102
    model, x, y = namespace["model"], namespace["x"], namespace["y"]
    # held-out digits, inference mode: the pure SNN with moving BN statistics
    predictions = np.asarray(model.predict(x[1500:], verbose=0)).argmax(axis=1)
    assert (predictions == y[1500:]).mean() >= 0.9
