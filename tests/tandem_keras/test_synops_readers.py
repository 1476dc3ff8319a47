"""What reads a model, on graphs with pooling, merges and GAP: export_model's activity
endpoints and metadata with python -m eval's report, tk.summary, ActivityLogger, and the
Fig. 9 analysis (its weight-activation products through pooling)."""
import json
import os

import keras
import numpy as np
import pytest

import tandem_keras as tk
from tandem_keras import analysis, export, synops
from tests.tandem_keras import test_synops_graph as graphs

report_lib = pytest.importorskip("eval.report")


def _images(model, n=12, seed=3):
    shape = model.inputs[0].shape[1:]
    return np.random.default_rng(seed).uniform(0, 3, (n, *shape)).astype("float32")


SLOW_GRAPHS = {"residual_identity_block", "pooling_on_spike_trains", "concatenated_spike_trains",
               "concatenated_trains_into_dense"}   # make test keeps the other graphs of each kind


@pytest.mark.parametrize("build", [
    pytest.param(g, id=g.__name__, marks=[pytest.mark.slow] if g.__name__ in SLOW_GRAPHS else [])
    for g in graphs.GRAPHS])
def test_exported_graph_evaluates_like_the_keras_model(build, tmp_path):
    """The SavedModel alone (serve_activity + assets/tandem_keras.json, format 2) gives the
    Keras model's errors and SynOps."""
    keras.utils.set_random_seed(5)
    model, _ = build()
    graphs._liven(model, 1)
    metadata = tk.export_model(model, str(tmp_path), spike_trains=False)
    assert metadata["format"] == "tandem_keras.activity/2"
    x = _images(model)
    labels = np.arange(len(x)) % int(model.outputs[0].shape[-1])
    loaded = export.LoadedModel(str(tmp_path))
    report, _ = report_lib.evaluate(loaded, [(x[:7], labels[:7]), (x[7:], labels[7:])])
    expected = tk.count_synops(model, x)
    for key in ("synops_snn", "synops_ann", "encoder_macs", "energy_snn_joules", "inference_time_steps"):
        assert report[key] == pytest.approx(expected[key], rel=1e-9), key
    assert [e["name"] for e in report["layers"]] == [e["name"] for e in expected["layers"]]
    logits = np.asarray(model.predict(x, verbose=0))
    assert report["top1_error"] == pytest.approx(100 * np.mean(logits.argmax(1) != labels))
    assert "SynOps per example" in report_lib.format_summary(report)


def test_issues_sequential_through_python_m_eval(tmp_path):
    """Issue 17's Sequential (TimeDistributed(MaxPooling2D) between the tandem conv and the
    readout) exports and evaluates on digits, max pooling a spiking row without synapses."""
    pytest.importorskip("common.datasets")
    keras.utils.set_random_seed(0)
    model, _ = graphs.issue_sequential()
    path = str(tmp_path / "export")
    tk.export_model(model, path)
    [report] = report_lib.evaluate_models([path], "digits", split="test", max_examples=50,
                                          quiet=True, output_json=str(tmp_path / "eval.json"))
    with open(tmp_path / "eval.json") as f:
        assert json.load(f)["synops_snn"] == pytest.approx(report["synops_snn"])
    rows = {e["name"]: e for e in report["layers"]}
    assert rows["conv"]["synops"] == 0 and rows["pool"]["kind"] == "spiking"
    assert rows["pool"]["mean_fanout"] == 10.0 and rows["pool"]["ann_macs"] == 0


def test_summary_of_a_graph():
    model, _ = graphs.concatenated_spike_trains()
    lines = []
    description = tk.summary(model, print_fn=lines.append)
    table = lines[0].splitlines()
    names = [line.split()[0] for line in table[2:-2]]
    assert names == ["enc", "a", "b", "c", "out"]
    rows = {r["name"]: r for r in description["layers"]}
    # 'a' (3 channels of 8) reaches conv 'c' (4 filters, 3x3, stride 2, 'same' on 8: TF pads 0
    # before and 1 after, output o reads 2o..2o+2, coverage 1,1,2,1,2,1,2,1): its mean fan-out
    # is 4 * (11/8)^2.
    assert synops.row_fanout(rows["a"]).mean() == pytest.approx(4 * (11 / 8) ** 2)
    assert f"{4 * (11 / 8) ** 2:.1f}" in table[2 + names.index("a")]
    report = tk.summary(model, _images(model), print_fn=lines.append)
    assert "SynOps per example" in lines[-1] and report["synops_snn"] > 0


def test_activity_logger_on_a_graph():
    keras.utils.set_random_seed(2)
    model, _ = graphs.pooled_and_direct_paths()
    graphs._liven(model, 2)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = _images(model, 16)
    logger = tk.ActivityLogger(log_dir=None, data=x[:8])
    history = model.fit(x, np.arange(16) % 3, epochs=1, batch_size=8, verbose=0, callbacks=[logger])
    expected = tk.count_synops(model, x[:8])
    assert history.history["synops/total_snn"][-1] == pytest.approx(expected["synops_snn"], rel=1e-6)
    assert history.history["spike_count/c1"][-1] > 0


def test_fig9_products_through_pooling():
    """Fig. 9's PCC for a layer whose spikes reach the readout through average pooling:
    the products are the readout's kernel applied to the pooled counts (Keras's own layers)."""
    keras.utils.set_random_seed(4)
    model, _ = graphs.average_pooled_counts()
    graphs._liven(model, 3)
    x = _images(model, 6)
    entry = analysis.direction_preservation(model, x)["c1"]
    flat = keras.layers.Flatten()
    kernel = model.get_layer("out").kernel.numpy()
    pool = model.get_layer("avg")
    products = [np.asarray(flat(pool(v))) @ kernel for v in (entry["snn_counts"], entry["ann_counts"])]
    np.testing.assert_allclose(entry["pcc"], analysis.pearson(*products), rtol=1e-5)
    assert np.isfinite(entry["pcc"]).all()
