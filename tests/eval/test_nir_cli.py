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
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # TensorFlow's start-up lines held back, as train and eval do
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


def _export_nir_error(args):
    """(exit status, stderr lines) of export_nir.main(args)."""
    import io
    from contextlib import redirect_stderr

    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        export_nir.main(args)
    return exit_info.value.code, err.getvalue().strip().splitlines()


def test_truncated_model_file_is_named_as_truncated(tmp_path):
    model = models.digits(time_steps=2)
    model.save(tmp_path / "model.keras")
    blob = (tmp_path / "model.keras").read_bytes()
    (tmp_path / "model.keras").write_bytes(blob[: len(blob) // 2])
    code, err = _export_nir_error([f"--saved_model={tmp_path}", f"--output={tmp_path / 'x.nir'}"])
    assert code == 2 and len(err) == 1, err
    assert "model.keras' is not a .keras file (a zip archive): it is truncated" in err[0]
    assert "not found" not in err[0].lower()
    assert not (tmp_path / "x.nir").exists()


@pytest.mark.parametrize("target", ["model.keras", "saved_model.pb", "notes.txt"])
def test_output_never_overwrites_the_model_or_another_file(tmp_path, target):
    """--output=E/model.keras once replaced the trained model with the NIR file."""
    keras.utils.set_random_seed(0)
    models.digits(time_steps=2).save(tmp_path / "model.keras")
    for name in ("saved_model.pb", "notes.txt"):
        (tmp_path / name).write_bytes(b"user's file")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    code, err = _export_nir_error([f"--saved_model={tmp_path}", f"--output={tmp_path / target}"])
    assert code == 2 and len(err) == 1 and err[0].startswith("export_nir: error: --output: "), err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing lost


def test_an_earlier_nir_file_is_replaced_whole(tmp_path):
    keras.utils.set_random_seed(0)
    model = models.digits(time_steps=2, decode="spike_count")
    model.save(tmp_path / "model.keras")
    for seed in (0, 1):  # the second export replaces the first (an HDF5 file)
        keras.utils.set_random_seed(seed)
        models.digits(time_steps=2, decode="spike_count").save(tmp_path / "model.keras")
        assert export_nir.main([f"--saved_model={tmp_path}", f"--output={tmp_path / 'm.nir'}"]) == 0
    graph = nir.read(str(tmp_path / "m.nir"))
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(graph.nodes["output_neurons"].weight,
                                  reloaded.get_layer("output_neurons").kernel.numpy().T)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nir", "model.keras"]  # no leftovers
    assert oct((tmp_path / "m.nir").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("decode", ["spike_count_tie", "spike_count_st"])
def test_tie_break_decoding_refused_naming_it(tmp_path, decode):
    models.digits(time_steps=2, decode=decode).save(tmp_path / "model.keras")
    code, err = _export_nir_error([f"--saved_model={tmp_path}", f"--output={tmp_path / 'x.nir'}"])
    assert code == 2 and len(err) == 1, err
    assert f"the model's decoding is {decode} (" in err[0] and "decode='spike_count'" in err[0]
