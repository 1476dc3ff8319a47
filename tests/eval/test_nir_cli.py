"""python -m eval.export_nir: model.keras of an export directory -> a NIR file."""
from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

nir = pytest.importorskip("nir")

import models  # noqa: E402
from eval import export_nir  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_cli_writes_the_graph_of_the_saved_model(tmp_path):
    keras.utils.set_random_seed(0)
    model = models.digits(time_steps=3, decode="spike_count")
    (tmp_path / "export").mkdir()
    model.save(tmp_path / "export" / "model.keras")
    out = tmp_path / "digits.nir"
    result = subprocess.run(
        [sys.executable, "-m", "eval.export_nir", f"--saved_model={tmp_path / 'export'}", f"--output={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "T=3" in result.stdout and "decoding=spike_count" in result.stdout
    graph = nir.read(str(out))
    np.testing.assert_array_equal(graph.nodes["output_neurons"].weight, model.get_layer("output_neurons").kernel.numpy().T)


@pytest.mark.parametrize("args,culprit", [
    (["--saved_model=/nonexistent/export", "--output=x.nir"], "--saved_model"),
    (["--saved_model={keras}", "--output=/nonexistent/dir/x.nir"], "--output"),
    (["--saved_model={bad}", "--output={tmp}/x.nir"], "--saved_model"),
    (["--saved_model={pool}", "--output={tmp}/x.nir"], "'pool'"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, args, culprit):
    bad = tmp_path / "bad.keras"
    bad.write_text("not a model")
    pool = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3),
                             __import__("tandem_keras").SpikeEncoder(2),
                             keras.layers.TimeDistributed(keras.layers.MaxPooling2D(), name="pool")])
    pool.save(tmp_path / "pool.keras")
    names = {"keras": tmp_path / "pool.keras", "bad": bad, "pool": tmp_path / "pool.keras", "tmp": tmp_path}
    with pytest.raises(SystemExit) as exit_info:
        export_nir.main([a.format(**names) for a in args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("export_nir: error: ") and culprit in err[0], err
