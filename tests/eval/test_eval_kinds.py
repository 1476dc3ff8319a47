"""python -m eval reports an ANN as an ANN and an SNN (constrain-then-train too) as an SNN.

The export records its mode, decoding and neuron; the MACs of an ANN report are checked
against the convolution / dense formulas, its energy against 4.6 pJ per MAC.
"""
import json
import os
import subprocess
import sys

import keras
import pytest

import models
import tandem_keras as tk
from tandem_keras import export
from tests._train_helpers import ROOT

report_lib = pytest.importorskip("eval.report")

# Conv2D(2, 3, valid) on 8x8x1: 6*6*2 outputs of 9 MACs; TandemDense(4) on 72; Dense(10) on 4.
MACS = 6 * 6 * 2 * 9 + 72 * 4 + 4 * 10


def _model(mode, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 32.0), keras.layers.Conv2D(2, 3),
        tk.SpikeEncoder(3, name="enc", mode=mode), tk.TimeFlatten(),
        tk.TandemDense(4, name="td", mode=mode), tk.SpikeCount(),
        keras.layers.Dense(10, name="logits")])


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    paths = {}
    for name, mode, export_mode in (("ann", "ann", None), ("quantized", "quantized", None),
                                    ("ctt", "quantized", "tandem"), ("tandem", "tandem", None)):
        paths[name] = str(root / name)
        export.export_model(_model(mode), paths[name], mode=export_mode)
    return paths


def _evaluate(path, capsys):
    capsys.readouterr()
    [report] = report_lib.evaluate_models([path], "digits", max_examples=64, analysis=False)
    return report, capsys.readouterr().out


@pytest.mark.parametrize("name", ["ann", "quantized"])
def test_an_ann_is_reported_by_its_macs_without_spikes(exports, capsys, name):
    report, printed = _evaluate(exports[name], capsys)
    assert report["network"] == "ann" and report["model"]["mode"] == name
    assert report["macs"] == MACS == sum(r["ann_macs"] for r in report["layers"])
    assert report["energy_joules"] == pytest.approx(4.6e-12 * MACS)
    for key in ("synops_snn", "synops_ratio", "energy_snn_joules", "inference_time_steps"):
        assert key not in report, key
    assert all(set(r) == {"name", "kind", "neurons", "ann_macs"} for r in report["layers"])
    expected = {"ann": "model: ReLU ANN (--mode=ann), membrane decoding",
                "quantized": "model: quantized ANN (--mode=quantized, T=3 levels), membrane decoding"}
    assert expected[name] in printed
    assert f"MACs per example: {MACS:,}" in printed and "4.6 pJ/MAC" in printed
    for word in ("spikes/neuron", "SynOps", "rate", "SNN"):
        assert word not in printed, word


@pytest.mark.parametrize("name, words", [
    ("tandem", ["model: tandem SNN, IF neurons, T=3, membrane decoding"]),
    ("ctt", ["model: tandem SNN, constrain-then-train (trained as --mode=quantized, exported "
             "as --export_mode=tandem), IF neurons, T=3, membrane decoding"]),
])
def test_an_snn_is_reported_with_its_spikes_and_synops(exports, capsys, name, words):
    report, printed = _evaluate(exports[name], capsys)
    assert report["network"] == "snn" and report["model"]["mode"] == "tandem"
    assert report["model"]["trained_mode"] == ("quantized" if name == "ctt" else "tandem")
    assert report["synops_ann"] == MACS and report["synops_snn"] >= 0
    for word in [*words, "spikes/neuron", "SynOps per example"]:
        assert word in printed, printed


def test_a_plain_savedmodel_is_evaluated_for_accuracy_only(tmp_path, capsys):
    import numpy as np

    from common import datasets

    model = _model("tandem")
    model.export(str(tmp_path / "plain"), verbose=False)  # Keras' own: no tandem_keras metadata
    report, printed = _evaluate(str(tmp_path / "plain"), capsys)
    assert report["synops_available"] is False and "network" not in report
    assert "model: a SavedModel without tandem_keras metadata (accuracy only)" in printed
    images, labels = next(iter(datasets.load("digits").split("test")[0].batch(64)))
    wrong = np.asarray(model(images, training=False)).argmax(-1) != labels.numpy()
    assert report["examples"] == 64 and report["top1_error"] == pytest.approx(100 * wrong.mean())


@pytest.mark.parametrize("decode", ["membrane", "spike_count", "spike_count_tie", "spike_count_st"])
def test_the_export_records_the_decoding_of_the_builders(decode):
    kind = export.model_kind(models.digits(time_steps=2, decode=decode, mode="quantized"))
    assert kind == {"mode": "quantized", "decoding": decode,
                    "neuron": tk.neurons.serialize(tk.neurons.IF(initial_potential=0.5))}
    kind = export.model_kind(models.digits(time_steps=2, decode=decode, neuron="if"))
    assert kind == {"mode": "tandem", "decoding": decode, "neuron": "if"}


@pytest.mark.slow
def test_cli_ann_and_constrain_then_train(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)

    def run(module, *args):
        result = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    for name, flags in (("ann", ["--mode=ann"]), ("ctt", ["--mode=quantized", "--export_mode=tandem"])):
        run("train", "--model=digits", "--dataset=digits", "--epochs=1", "--time_steps=2",
            "--batch_size=256", f"--model_dir={tmp_path / name}", *flags)
        printed = run("eval", f"--saved_model={tmp_path / name / 'export'}", "--split=test",
                      "--noanalysis")
        if name == "ann":
            assert "model: ReLU ANN (--mode=ann), membrane decoding" in printed
            assert "MACs per example" in printed and "spikes/neuron" not in printed
        else:
            assert "constrain-then-train" in printed and "spikes/neuron" in printed


@pytest.mark.parametrize("flag, where", [("output_json", "{file}/report.json"),
                                         ("plots_dir", "{file}"),
                                         ("output_json", "{dir}")])
def test_unwritable_outputs_refused_before_evaluating(exports, tmp_path, monkeypatch, flag, where):
    (tmp_path / "a_file").write_text("x")
    path = where.format(file=tmp_path / "a_file", dir=tmp_path)

    def must_not_run(*args, **kwargs):
        raise AssertionError("evaluated before refusing the output")

    monkeypatch.setattr(report_lib, "evaluate", must_not_run)
    with pytest.raises(report_lib.EvalError, match=f"^--{flag}={path}: "):
        report_lib.evaluate_models([exports["tandem"]], "digits", **{flag: path})
