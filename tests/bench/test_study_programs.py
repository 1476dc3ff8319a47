"""bench.accuracy_study and bench.convert_cifar10 run as a user runs them (subprocesses) on the
digits dataset: the record's errors are those of the model they saved, measured here again
(slow: each program is a fresh process)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from bench import records, tables
from tandem_keras.saved_model import load_metadata

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(module, *args):
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                            text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _validation_error(path):
    """Top-1 error (%) of a saved model on the digits validation split, ties to the lower class."""
    import keras

    from common import datasets

    model = keras.models.load_model(path, compile=False)
    examples = datasets.load("digits", validation_split=0.1).split("validation")[0]
    images, labels = map(np.stack, zip(*examples.as_numpy_iterator()))
    logits = np.asarray(model(images.astype(np.float32), training=False))
    return 100.0 * np.mean(logits.argmax(-1) != labels)


@pytest.mark.slow  # a fresh process: TensorFlow's import alone takes several seconds
def test_one_study_row_records_the_error_of_the_model_it_saved(tmp_path):
    out, save = str(tmp_path / "records.jsonl"), tmp_path / "ann"
    result = _run("bench.accuracy_study", "--network=digits", "--dataset=digits", "--row=ann",
                  "--mode=ann", "--time_steps=2", "--epochs=2", "--steps_per_epoch=3",
                  "--batch_size=16", f"--save_dir={save}", f"--out={out}")
    [record] = records.of(records.read(out), "accuracy_study")
    c, f = record["config"], record["figures"]
    assert (c["row"], c["mode"], c["network"], f["epochs"], f["steps"]) == ("ann", "ann", "digits", 2, 6)
    assert [e["epoch"] for e in f["per_epoch"]] == [1, 2]
    assert f["val_error"] == f["per_epoch"][-1]["val_error"]
    assert f["val_error"] == pytest.approx(_validation_error(save / "model.keras"))
    assert set(f["modes"]) == {"tandem", "quantized"}
    body, used = tables.study(records.read(out))
    assert used == [record] and f"**{f['val_error']:.2f}%**" in body and body in result.stdout


@pytest.mark.slow
def test_an_ema_row_records_the_average_it_saved_every_epoch_and_at_the_end(tmp_path):
    """--ema_momentum: the last epoch's errors (the quantized ANN and its SNN) are those of the
    moving average fit ends with, which is what is saved."""
    out, save = str(tmp_path / "records.jsonl"), tmp_path / "save"
    _run("bench.accuracy_study", "--network=digits", "--dataset=digits", "--row=q", "--mode=quantized",
         "--time_steps=2", "--epochs=2", "--steps_per_epoch=5", "--batch_size=16",
         "--learning_rate=0.01", "--ema_momentum=0.9", f"--save_dir={save}", f"--out={out}")
    [record] = records.of(records.read(out), "accuracy_study")
    f = record["figures"]
    assert record["config"]["ema_momentum"] == 0.9
    assert f["val_error"] == pytest.approx(_validation_error(save / "model.keras"))
    assert f["per_epoch"][-1]["snn_error"] == pytest.approx(f["modes"]["tandem"])
    assert "weights' EMA 0.9" in tables.study(records.read(out))[0]


@pytest.mark.slow
def test_a_saved_ann_converts_and_fine_tunes(tmp_path):
    out, ann, export = str(tmp_path / "records.jsonl"), tmp_path / "ann", tmp_path / "snn"
    _run("bench.accuracy_study", "--network=digits", "--dataset=digits", "--row=ann", "--mode=ann",
         "--time_steps=2", "--epochs=1", "--steps_per_epoch=20", "--batch_size=16",
         f"--save_dir={ann}", f"--out={out}")
    _run("bench.convert_cifar10", f"--ann={ann}", "--name=digits", "--dataset=digits",
         "--step=finetune", "--time_steps=2", "--epochs=1", "--steps_per_epoch=2",
         "--batch_size=16", "--calibration_batches=2", f"--export_dir={export}", f"--out={out}")
    _run("bench.accuracy_study", "--network=digits", "--dataset=digits", "--row=converted",
         f"--init_from={ann}", "--time_steps=2", "--epochs=1", "--steps_per_epoch=2",
         "--batch_size=16", f"--out={out}")
    tuned = records.of(records.read(out), "conversion")[0]["figures"]
    assert tuned["export_dir"] == str(export) and tuned["steps"] == 2
    assert tuned["val_error"] == pytest.approx(_validation_error(export / "model.keras"))
    assert load_metadata(str(export))["training"]["converted_from"] == "ann"
    study = records.of(records.read(out), "accuracy_study")
    assert [r["config"]["row"] for r in study] == ["ann", "converted"]
    assert study[1]["figures"]["network"] == study[0]["figures"]["network"]


@pytest.mark.slow
def test_zero_shot_records_the_defaults_and_negative_spikes(tmp_path):
    """--step=zero_shot --negative_spikes: tk.convert's defaults (and their quantized ANN) as
    this process measures them again from the same calibration batches, then every
    calibration with negative spikes; the 0/1 record of the same ANN stays in the table."""
    import keras

    import tandem_keras as tk
    from bench import harness

    out, ann = str(tmp_path / "records.jsonl"), tmp_path / "ann"
    _run("bench.accuracy_study", "--network=digits", "--dataset=digits", "--row=ann", "--mode=ann",
         "--time_steps=2", "--epochs=1", "--steps_per_epoch=20", "--batch_size=16",
         f"--save_dir={ann}", f"--out={out}")
    common = [f"--ann={ann}", "--name=digits", "--dataset=digits", "--step=zero_shot", "--time_steps=2",
              "--percentiles=99.9", "--batch_size=16", "--calibration_batches=2", f"--out={out}"]
    _run("bench.convert_cifar10", *common)
    result = _run("bench.convert_cifar10", *common, "--negative_spikes")
    plain, signed = records.of(records.read(out), "conversion")
    assert signed["config"]["negative_spikes"] and not plain["config"]["negative_spikes"]
    rows = signed["figures"]["rows"]
    assert [r["method"] for r in rows] == ["ann", "default", "converted", "calibrated", "converted", "calibrated"]
    assert all(r["negative_spikes"] for r in rows[2:])
    model = keras.models.load_model(ann / "model.keras", compile=False)
    _, val, calibration = harness.split_batches("digits", 0.1, 16)
    default = tk.convert(model, time_steps=2, calibration_data=calibration, calibration_batches=2)
    assert rows[1]["val_error"] == pytest.approx(harness.val_error(default, val))
    assert rows[1]["quantized_error"] == pytest.approx(harness.val_error(tk.with_mode(default, "quantized"), val))
    assert "negative spikes" in result.stdout
    text, used = tables.conversion_zero_shot(records.read(out))
    assert len(used) == 2 and text.count("| -1/0/1 ") == 2 and text.count("| 0/1 ") == 2


@pytest.mark.slow
def test_trainable_scales_row_trains_the_residual_input_weights(tmp_path):
    """--trainable_scales on a converted residual ANN and on a tandem model to train further
    (there with --negative_spikes): the saved SNN's TandemAdds have trained scales, the
    further trained one negative spikes in every spiking layer, and the table says so."""
    import keras

    import tandem_keras as tk

    from tests.common.test_datasets import _write_folder

    out, ann, snn, more = (str(tmp_path / "records.jsonl"), tmp_path / "ann", tmp_path / "snn",
                           tmp_path / "more")
    _write_folder(str(tmp_path / "images"), sizes=(24, 24), shape=(32, 32, 3))
    common = ("--network=resnet20", "--width_divisor=8", f"--dataset=folder:{tmp_path / 'images'}",
              "--time_steps=2",
              "--epochs=1", "--steps_per_epoch=2", "--batch_size=16", f"--out={out}")
    _run("bench.accuracy_study", "--row=ann", "--mode=ann", f"--save_dir={ann}", *common)
    _run("bench.accuracy_study", "--row=ts", f"--init_from={ann}", "--trainable_scales",
         f"--save_dir={snn}", *common)
    _run("bench.accuracy_study", "--row=ts_more", f"--start_from={snn}", "--trainable_scales",
         "--negative_spikes", f"--save_dir={more}", *common)
    for path in (snn, more):
        adds = [layer for layer in keras.models.load_model(path / "model.keras").layers
                if isinstance(layer, tk.TandemAdd)]
        assert len(adds) == 9 and all(layer.trainable_scales for layer in adds)
    first = [layer.current_scales for layer in keras.models.load_model(snn / "model.keras").layers
             if isinstance(layer, tk.TandemAdd)]
    later = [layer.current_scales for layer in keras.models.load_model(more / "model.keras").layers
             if isinstance(layer, tk.TandemAdd)]
    assert first != later                       # two more steps moved them
    body, _ = tables.study(records.read(out))
    assert body.count("TandemAdd scales trained") == 2 and body.count("negative spikes") == 1
    signed = [getattr(layer, "neuron", None) for layer in keras.models.load_model(more / "model.keras").layers
              if isinstance(layer, (tk.TandemAdd, tk.TandemConv2D))]
    assert all(n.negative_spikes for n in signed if n is not None) and sum(n is not None for n in signed) >= 18
