"""Smoke test of bench/reproduce_cifar10.py on a generated image folder (a few seconds),
its record, and its finding checks on hand-made numbers."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from bench import records
from bench import reproduce_cifar10 as rep


def _image_folder(root, classes=3, per_class=20, size=16):
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 80, (size, size, 3))
            image[..., c] += 150  # the class is the dominant colour channel
            Image.fromarray(image.astype(np.uint8)).save(folder / f"{i:03d}.png")
    return str(root)


def _macs_width32_16px():
    """Eq. 14 by hand for CIFARNet / 32 on 16x16x3 images, 3 classes (3x3 'same' convs)."""
    encoder = 16 * 16 * 9 * 3 * 4            # 128/32 = 4 filters, stride 1
    conv1 = 8 * 8 * 9 * 4 * 8                # 256/32, stride 2
    conv2 = 4 * 4 * 9 * 8 * 16               # 512/32, stride 2
    conv3 = 4 * 4 * 9 * 16 * 32              # 1024/32
    conv4 = 4 * 4 * 9 * 32 * 16              # 512/32
    dense = (4 * 4 * 16) * 32                # 1024/32
    logits = 32 * 3
    return encoder + conv1 + conv2 + conv3 + conv4 + dense + logits


@pytest.mark.slow
def test_tiny_run_writes_consistent_results(tmp_path):
    train_dir = _image_folder(tmp_path / "images")
    config = rep.make_config("tiny", train_dir, out_dir=str(tmp_path / "out"), test_dir=train_dir,
                             sweep_time_steps=[2], synops_time_steps=[2])
    record_file = str(tmp_path / "records.jsonl")
    results = rep.run(config, record_file=record_file)

    # 60 images, common.datasets holds out round(0.1 * 60) = 6; the budget takes 48 of the other 54.
    assert results["data"]["train"] == 48 and results["data"]["validation"] == 6
    assert results["data"]["test"] == 16  # --test_dir: all 60 images, the budget takes 16
    assert set(results["runs"]) == {"ann", "quantized_T2", "tandem_T2", "tandem_spike_T2"}
    for run in results["runs"].values():
        assert run["val_error"] * 6 == pytest.approx(round(run["val_error"] * 6))
        assert run["test_error"] * 16 == pytest.approx(round(run["test_error"] * 16))
    assert len(results["runs"]["tandem_T2"]["val_error_per_epoch"]) == config.epochs

    report = results["synops"]["2"]
    assert report["synops_ann"] == _macs_width32_16px()
    assert report["synops_ratio"] == pytest.approx(report["synops_snn"] / report["synops_ann"])
    # every spike reaches at most T spikes' worth of fan-out: SNN SynOps <= T * connections
    assert 0 <= report["synops_snn"] <= 2 * report["synops_ann"]

    rows = results["constrain_then_train"]["2"]["representation_error"]
    assert [r["name"] for r in rows][:2] == ["encoder", "tandem_conv1"]
    assert rows[0]["mean_abs_diff"] == 0.0  # the encoder is the same in both modes
    fig9 = results["direction_preservation"]
    for row in fig9:  # floor(a) is an integer version of a: both angles lie in [0, 90]
        assert set(row) == {"name", "angle_deg", "pcc", "pcc_median", "angle_deg_floor",
                            "pcc_floor", "pcc_floor_median"}  # the keys assess() reads
        for key in ("angle_deg", "angle_deg_floor"):
            assert row[key] is None or 0.0 <= row[key] <= 90.0
    assert len(os.listdir(tmp_path / "out" / "models")) == len(results["runs"])
    # The main window's SavedModels evaluate, as python -m eval does, to the run's own error
    # on the validation split they record (all 6 held-out images here).
    from eval import report as eval_report
    for name in ("tandem_T2", "quantized_T2"):
        [evaluated] = eval_report.evaluate_models([results["exports"][name]], split="validation",
                                                  dataset=f"folder:{train_dir}",
                                                  analysis=False, quiet=True)
        assert evaluated["examples"] == 6
        assert evaluated["top1_error"] == pytest.approx(100 * results["runs"][name]["val_error"])
    assert [r["name"] for r in fig9] == [
        "tandem_conv1", "tandem_conv2", "tandem_conv3", "tandem_conv4", "tandem_dense1"]

    assert [f["finding"][:2] for f in results["findings"]] == ["1.", "2.", "3.", "4.", "5."]
    with open(tmp_path / "out" / "results.json") as f:
        assert json.load(f)["findings"] == results["findings"]
    [record] = records.of(records.read(record_file), "reproduce_cifar10")
    assert record["config"]["budget"] == "tiny" and record["commit"] == records.commit()[0]
    assert record["figures"]["runs"] == results["runs"]
    assert record["figures"]["findings"] == results["findings"]
    for path in results["figures"].values():
        with open(path, "rb") as f:
            assert f.read(4) == b"\x89PNG"
        assert os.path.basename(path).startswith("cifar10_tiny_")


def test_one_run_is_trained_by_the_recipe_and_measured_on_its_validation_split(tmp_path):
    """The fast path of the reproduction: one run of cifar10.train_one (the tiny run above
    trains ten), its errors against the model's own predictions."""
    from bench.reproduce_cifar10 import load_data, train_one

    train_dir = _image_folder(tmp_path / "images")
    config = rep.make_config("tiny", train_dir, test_dir=train_dir)
    data = load_data(config)
    model, result = train_one(config, data, "tandem", 2, decode="spike_count", curve=True)
    assert model.name == "cifarnet_w32_tandem_T2_spike_count" and model.optimizer is not None
    logits = np.asarray(model(data["x_val"], training=False))
    assert result["val_error"] == np.mean(np.argmax(logits, 1) != data["y_val"])
    assert result["val_error_per_epoch"] == [result["val_error"]]  # one epoch: the curve ends at it
    assert result["val_tie_fraction"] == np.mean([(row == row.max()).sum() > 1 for row in logits])
    test_logits = np.asarray(model(data["x_test"], training=False))
    assert result["test_error"] == np.mean(np.argmax(test_logits, 1) != data["y_test"])
    assert len(result["train_loss"]) == config.epochs == 1


def _results(quantized, tandem, spike, ctt, sweep, ratios, angles, pccs, discrepancy):
    runs = {"ann": {"val_error": 0.1}, "quantized_T4": {"val_error": quantized},
            "tandem_spike_T4": {"val_error": spike}}
    runs.update({f"tandem_T{t}": {"val_error": e} for t, e in sweep.items()})
    runs["tandem_T4"] = {"val_error": tandem}
    return {
        "config": {"time_steps": 4, "sweep_time_steps": sorted(sweep)},
        "runs": runs,
        "constrain_then_train": {str(t): {"ctt_error": e, "representation_error": [
            {"name": "encoder", "mean_abs_diff": 0.0}] + [
            {"name": f"l{i}", "mean_abs_diff": d} for i, d in enumerate(discrepancy)]}
            for t, e in ctt.items()},
        "synops": {"4": {"synops_ratio": ratios[0], "synops_ratio_with_encoder": ratios[0]},
                   "8": {"synops_ratio": ratios[1], "synops_ratio_with_encoder": ratios[1]}},
        "direction_preservation": [{"name": f"l{i}", "angle_deg_floor": a, "pcc_floor_median": p}
                                   for i, (a, p) in enumerate(zip(angles, pccs))],
    }


def test_assess_on_hand_made_numbers():
    good = rep.assess(_results(
        quantized=0.30, tandem=0.31, spike=0.315, ctt={2: 0.60, 4: 0.50, 8: 0.40},
        sweep={2: 0.40, 4: 0.31, 8: 0.30}, ratios=(0.3, 0.5), angles=(10, 20, 30),
        pccs=(0.99, 0.95, None), discrepancy=(0.1, 0.2, 0.4)))
    assert [row["reproduced"] for row in good] == ["yes"] * 5
    bad = rep.assess(_results(
        quantized=0.30, tandem=0.33, spike=0.35, ctt={2: 0.35, 4: 0.30, 8: 0.10},  # tandem 3 points worse
        sweep={2: 0.30, 4: 0.35, 8: 0.34}, ratios=(0.3, 1.2), angles=(40, 40, 40),
        pccs=(0.8, 0.95, None), discrepancy=(0.4, 0.2, 0.1)))
    assert [row["reproduced"] for row in bad] == ["no"] * 5
    mixed = rep.assess(_results(
        quantized=0.30, tandem=0.31, spike=0.40, ctt={2: 0.60, 4: 0.50, 8: 0.40},
        sweep={2: 0.40, 4: 0.31, 8: 0.30}, ratios=(0.3, 0.5), angles=(10, 20, 30),
        pccs=(0.85, 0.95, None), discrepancy=(0.1, 0.2, 0.4)))
    assert mixed[0]["reproduced"] == "partly (membrane decoding only)"
    assert mixed[4]["reproduced"] == "partly (angle only)"


@pytest.mark.parametrize("budget, kwargs, message", [
    ("huge", {}, "--budget must be one of"),
    ("small", {"train_dir": ""}, "--train_dir is required"),
    ("small", {"batch_size": 100_000}, "larger than train_size"),
    ("small", {"augment": "mixup"}, "augment must be"),
])
def test_make_config_rejects_bad_values(budget, kwargs, message):
    train_dir = kwargs.pop("train_dir", "/some/folder")
    with pytest.raises(ValueError, match=message):
        rep.make_config(budget, train_dir, **kwargs)
