"""python -m eval: accuracy, SynOps and activity from the SavedModel alone (digits data)."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tandem_keras as tk
from tandem_keras import export, synops

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import datasets
report_lib = pytest.importorskip("eval.report")


def _digits_model(time_steps=3, input_shape=(8, 8, 1), seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input(input_shape, name="images")
    x = keras.layers.Rescaling(1 / 64.0)(inp)
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="encoder_conv")(x)
    x = tk.SpikeEncoder(time_steps, threshold=0.25, name="encoder")(x)
    x = tk.TandemConv2D(6, 3, strides=2, batch_norm=False, threshold=0.5, name="tandem_conv1")(x)
    x = tk.TimeFlatten()(x)
    x = tk.SpikeCount()(x)
    out = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inp, out)


def _test_images(n):
    source = datasets.load("digits")
    ds, _ = source.split("test")
    images, labels = zip(*[(np.asarray(a), int(b)) for a, b in ds.take(n)])
    return np.stack(images), np.array(labels)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    paths = []
    for t in (2, 3):
        model = _digits_model(time_steps=t)
        path = str(root / f"t{t}")
        export.export_model(model, path)
        model.save(os.path.join(path, "model.keras"))
        paths.append((path, model))
    return root, paths


def test_report_against_keras_model(exported, capsys):
    root, [(path, model), _] = exported
    out_json = str(root / "eval.json")
    reports = report_lib.evaluate_models([path], "digits", batch_size=32, max_examples=70,
                                         output_json=out_json, plots_dir=str(root / "plots"))
    with open(out_json) as f:
        report = json.load(f)
    assert report == json.loads(json.dumps(reports[0], default=float))
    for key in ("top1_error", "top5_error", "examples", "time_steps", "inference_time_steps",
                "synops_snn", "synops_ann", "synops_ratio", "encoder_macs",
                "energy_snn_joules", "energy_ann_joules", "layers"):
        assert key in report, key
    assert report["examples"] == 70
    assert report["top5_error"] <= report["top1_error"]
    assert report["synops_ratio"] == pytest.approx(report["synops_snn"] / report["synops_ann"])
    assert report["time_steps"] == 2 and report["inference_time_steps"] == 2 + 2

    # Independent references from the Keras model on the same 70 test images.
    images, labels = _test_images(70)
    logits = np.asarray(model.predict(images, verbose=0))
    assert report["top1_error"] == pytest.approx(100 * np.mean(logits.argmax(1) != labels))
    top5 = np.argsort(-logits, 1)[:, :5]
    assert report["top5_error"] == pytest.approx(100 * np.mean(~np.any(top5 == labels[:, None], 1)))
    probe = keras.Model(model.inputs[0], [model.get_layer("encoder").output,
                                          model.get_layer("tandem_conv1").output])
    enc, conv = (np.asarray(t).sum(axis=1) for t in probe(images))
    # Encoder spikes -> tandem_conv1 (6 filters, 3x3, stride 2 on 8x8): exact per-neuron
    # fan-out 6 * coverage; conv spikes -> 10 logits each.
    fan = synops.conv2d_fanout([8, 8, 4], 6, 3, 2, "same")
    expected = ((enc * fan).sum() + conv.sum() * 10) / 70
    assert report["synops_snn"] == pytest.approx(expected, rel=1e-9)
    # ANN MACs: 9*1*8*8*4 + 9*4*4*4*6 + 96*10.
    assert report["synops_ann"] == 2304 + 3456 + 960 and report["encoder_macs"] == 2304
    layers = {e["name"]: e for e in report["layers"]}
    assert layers["encoder"]["avg_spike_count"] == pytest.approx(enc.mean())
    assert layers["tandem_conv1"]["firing_rate"] == pytest.approx(conv.mean() / 2)
    assert layers["logits"]["ann_macs"] == 960
    assert {r["name"] for r in report["analysis"]["direction_preservation"]} == {"tandem_conv1"}
    printed = capsys.readouterr().out
    assert "top-1 error" in printed and "tandem_conv1" in printed
    for name in ("spike_counts", "spike_raster", "spike_count_maps", "direction_preservation",
                 "representation_error"):
        with open(root / "plots" / f"{name}.png", "rb") as f:
            assert f.read(4) == b"\x89PNG"


def test_diagnosis_of_the_first_examples_across_batches(exported, capsys):
    """--diagnosis_examples: tk.diagnosis on the first examples (gathered over batches of
    32), the same rows as diagnose() on the same images; printed and in the report."""
    root, [(path, model), _] = exported
    [report] = report_lib.evaluate_models([path], "digits", batch_size=32, max_examples=96,
                                          analysis=False, diagnosis_examples=80)
    images, labels = _test_images(80)
    expected = tk.diagnosis.diagnose(model, images, labels)
    d = report["diagnosis"]
    assert d["examples"] == 80 and [r["name"] for r in d["layers"]] == ["encoder", "tandem_conv1"]
    for got, want in zip(d["layers"], expected.layers):
        assert got["added"] == pytest.approx(want["added"]) and got["rate"] == pytest.approx(want["rate"])
    assert d["errors"]["snn"] == pytest.approx(100 * expected.errors["snn"])
    assert [e["k"] for e in d["prefix_errors"]] == [0, 1, 2]
    assert "inherited |q-Q|" in capsys.readouterr().out
    with pytest.raises(report_lib.EvalError, match="--diagnosis_examples must be >= 0"):
        report_lib.evaluate_models([path], "digits", diagnosis_examples=-1)


def test_several_models_error_vs_time_steps(exported, tmp_path):
    _, paths = exported
    report_lib.evaluate_models([p for p, _ in paths], "digits", batch_size=64, max_examples=64,
                               plots_dir=str(tmp_path), output_json=str(tmp_path / "e.json"),
                               analysis=False, quiet=True)
    with open(tmp_path / "e.json") as f:
        reports = json.load(f)["models"]
    assert [r["time_steps"] for r in reports] == [2, 3]
    assert os.path.getsize(tmp_path / "error_vs_time_steps.png") > 5000
    assert os.path.exists(tmp_path / "model1_spike_counts.png")


def test_bad_inputs(exported, tmp_path, capsys):
    with pytest.raises(report_lib.EvalError, match="not a SavedModel"):
        report_lib.evaluate_models([str(tmp_path)], "digits")
    with pytest.raises(report_lib.EvalError, match="not a directory"):
        report_lib.evaluate_models([str(tmp_path / "missing")], "digits")
    # Image size mismatch: a 6x6 model on 8x8 digits.
    small = str(tmp_path / "small")
    export.export_model(_digits_model(input_shape=(6, 6, 1)), small, spike_trains=False)
    with pytest.raises(report_lib.EvalError, match=r"images of shape \(8, 8, 1\) but the model "
                                                   r"expects \(6, 6, 1\)"):
        report_lib.evaluate_models([small], "digits")
    # A SavedModel without the activity endpoint: accuracy only, with a warning.
    plain = str(tmp_path / "plain")
    _digits_model().export(plain, verbose=False)
    capsys.readouterr()
    [report] = report_lib.evaluate_models([plain], "digits", max_examples=40, quiet=True,
                                          output_json=str(tmp_path / "p.json"))
    err = capsys.readouterr().err
    assert "SynOps and spike counts are unavailable" in err and len(err.strip().splitlines()) == 1
    assert report["synops_available"] is False and 0 <= report["top1_error"] <= 100
    assert "synops_snn" not in report


def _run(module, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cli_end_to_end_with_train(tmp_path):
    pytest.importorskip("train.run", reason="python -m train is not available")
    export_dir = str(tmp_path / "export")
    result = _run("train", "--model=digits", "--dataset=digits", "--epochs=1",
                  "--batch_size=256", "--time_steps=2", f"--model_dir={tmp_path / 'model'}",
                  f"--export_dir={export_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    out_json = str(tmp_path / "eval.json")
    result = _run("eval", f"--saved_model={export_dir}", "--dataset=digits", "--split=test",
                  "--batch_size=128", f"--output_json={out_json}", "--noanalysis")
    assert result.returncode == 0, result.stderr[-2000:]
    with open(out_json) as f:
        report = json.load(f)
    assert report["examples"] == 360  # 20% of the 1797 digits
    assert report["top5_error"] <= report["top1_error"]
    assert report["synops_ratio"] == pytest.approx(report["synops_snn"] / report["synops_ann"])
    assert report["time_steps"] == 2 and report["inference_time_steps"] > 2
    assert "SynOps per example" in result.stdout
    bad = _run("eval", f"--saved_model={tmp_path / 'model'}", "--dataset=digits")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("eval: error: ")
    assert "not a SavedModel" in bad.stderr
