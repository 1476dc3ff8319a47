"""The bad-input table of issue 9, as a user meets it: ``python -m train`` / ``python -m eval``.

Every row must end with exit status 2 and exactly one ``PROGRAM: error: ...`` line on
stderr naming the culprit, and no traceback.

- The flag rows (absl's own errors and ``train.flags``' validators) run in this process through
  ``python -m train``'s own parser and ``main`` (``train.run.run`` is replaced by a
  failure: none of them may get that far).
- The rows that need a real program (TensorFlow's start-up, loaded data, a run directory,
  a SavedModel) are subprocesses, started a few at a time by one fixture; the eval rows
  and the resume row share one tiny digits run.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import train.__main__ as train_main
from tests._train_helpers import ROOT
from train import flags as train_flags
from common.console import flags_parser

DIGITS = ["--model=digits", "--dataset=digits", "--time_steps=2", "--batch_size=256"]
PARALLEL = 4


def _start(program, args, env=None):
    full_env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    full_env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT, **(env or {}))
    return subprocess.Popen([sys.executable, "-m", program, *args], cwd=ROOT, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run_all(jobs):
    """Runs ``{key: (program, args, env)}`` at most PARALLEL at a time; ``{key: (rc, err)}``."""
    pending, running, done = list(jobs.items()), {}, {}
    while pending or running:
        while pending and len(running) < PARALLEL:
            key, (program, args, env) = pending.pop(0)
            running[key] = _start(program, args, env)
        for key, proc in list(running.items()):
            if proc.poll() is not None:
                _, err = proc.communicate()
                done[key] = (proc.returncode, err)
                del running[key]
        time.sleep(0.2)
    return done


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One epoch on digits with --validation_split=0.2 (not the default 0.1)."""
    model_dir = str(tmp_path_factory.mktemp("bad_input") / "run")
    proc = _start("train", [*DIGITS, "--epochs=1", "--validation_split=0.2",
                            f"--model_dir={model_dir}"])
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return model_dir


@pytest.fixture(scope="module")
def nan_export(tmp_path_factory):
    """A SavedModel (Keras' plain export, which checks nothing) with a NaN weight."""
    path = str(tmp_path_factory.mktemp("nan") / "export")
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, name="logits")])
    kernel = model.get_layer("logits").kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    model.export(path, verbose=False)
    return path


# In-process rows: (args, words the error line must contain).
FLAG_TABLE = {
    # absl's own flag errors (absl alone: several lines and exit status 1)
    "unknown_flag": (["--nope=1"], ["'nope'"]),
    "bad_enum": (["--decode=spikes"], ["--decode", "spike_count"]),
    "missing_required": (["--model=digits"], ["--model_dir"]),
    "not_an_int": (["--epochs=ten"], ["--epochs"]),
    # train.flags' bounds and validators (absl)
    "lr_inf": (["--learning_rate=inf"], ["--learning_rate=inf", "finite"]),
    "lr_nan": (["--learning_rate=nan"], ["--learning_rate=nan", "finite"]),
    "lr_zero": (["--learning_rate=0"], ["--learning_rate=0"]),
    "factor_negative": (["--lr_step_factor=-1"], ["--lr_step_factor=-1"]),
    "factor_zero": (["--lr_step_factor=0"], ["--lr_step_factor=0"]),
    "factor_inf": (["--lr_step_factor=inf"], ["--lr_step_factor=inf"]),
    "decay_inf": (["--weight_decay=inf"], ["--weight_decay=inf"]),
    "dropout_nan": (["--dropout=nan"], ["--dropout=nan"]),
    "split_one": (["--validation_split=1"], ["--validation_split=1"]),
    "time_steps_zero": (["--time_steps=0"], ["--time_steps=0"]),
    "unknown_model": (["--model=resnet"], ["--model=resnet"]),
    "time_steps_huge": (["--time_steps=100000"], ["--time_steps=100000", "[1, 256]"]),
    "epochs_huge": (["--epochs=100000"], ["--epochs=100000", "[1, 10000]"]),
    "seed_negative": (["--seed=-1"], ["--seed=-1"]),
    "multi_worker_no_tf_config": (["--strategy=multi_worker"], ["--strategy=multi_worker", "TF_CONFIG"]),
    "positional": (["extra"], ["unexpected arguments", "extra"]),
    "export_dir_is_file": ([f"--export_dir={__file__}"], ["--export_dir=", "not a directory"]),
}


@pytest.mark.parametrize("case", sorted(FLAG_TABLE))
def test_bad_flag_is_one_line_exit_2(case, capsys, monkeypatch, tmp_path):
    args, words = FLAG_TABLE[case]
    if "--model=digits" not in args:
        args = [*args, f"--model_dir={tmp_path}"]
    monkeypatch.delenv("TF_CONFIG", raising=False)

    def must_not_run(values):
        raise AssertionError(f"{case}: training started")

    monkeypatch.setattr("train.run.run", must_not_run)
    train_flags.FLAGS.unparse_flags()
    with pytest.raises(SystemExit) as exit_info:
        rest = flags_parser("train", flag_values=train_flags.FLAGS)(["train", *args])
        train_main.main(rest)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.count("\n") == 1 and err.startswith("train: error: "), err
    for word in words:
        assert word in err, err
    train_flags.FLAGS.unparse_flags()


def test_model_dir_that_is_a_file(tmp_path):
    from absl import flags

    from train import rundir
    from train.config import TrainConfig

    path = tmp_path / "a_file"
    path.write_text("not a directory")
    train_flags.FLAGS.unparse_flags()
    with pytest.raises(flags.IllegalFlagValueError,
                       match=r"^flag --model_dir=.*a_file: exists and is not a directory$"):
        train_flags.FLAGS(["train", f"--model_dir={path}"])
    train_flags.FLAGS.unparse_flags()
    with pytest.raises(rundir.RunDirError, match=r"^--model_dir=.*a_file: exists and is not a directory$"):
        rundir.prepare(TrainConfig(model_dir=str(path)), restart=False)


@pytest.mark.parametrize("strategy", ["multi_worker", "auto"])
def test_tf_config_that_is_not_json(monkeypatch, strategy, tmp_path):
    from absl import flags

    monkeypatch.setenv("TF_CONFIG", "{not json")
    train_flags.FLAGS.unparse_flags()
    with pytest.raises(flags.IllegalFlagValueError,
                       match=f"^flag --strategy={strategy}: TF_CONFIG is not valid JSON"):
        train_flags.FLAGS(["train", f"--strategy={strategy}", f"--model_dir={tmp_path}"])
    train_flags.FLAGS.unparse_flags()
    monkeypatch.setenv("TF_CONFIG", "{}")  # auto: an empty cluster is one process
    if strategy == "auto":
        train_flags.FLAGS(["train", f"--strategy={strategy}", f"--model_dir={tmp_path}"])
    train_flags.FLAGS.unparse_flags()


# Subprocess rows: (program, args, env, words the error line must contain). {run} is the
# digits run's model_dir, {export} its export, {nan} the NaN export, {file} a regular file.
TABLE = {
    "train_unknown_flag": ("train", ["--nope=1", "--model_dir=/tmp/x"], None, ["'nope'"]),
    # common.datasets' dataset names
    "unknown_dataset": ("train", ["--dataset=mnist", "--model_dir={tmp}/d"], None,
                        ["--dataset=mnist", "unknown dataset"]),
    # after the data is loaded
    "model_vs_dataset": ("train", ["--dataset=digits", "--epochs=1", "--model_dir={tmp}/m"], None,
                         ["--model=cifarnet", "--dataset=digits", "channels"]),
    # image folders (common.datasets' checks)
    "folder_one_class": ("train", [*DIGITS, "--dataset=folder:{one_class}", "--model_dir={tmp}/f1"],
                         None, ["--dataset=folder:", "1 class"]),
    "folder_corrupt_file": ("train", [*DIGITS, "--dataset=folder:{corrupt}", "--model_dir={tmp}/f2"],
                            None, ["--dataset=folder:", "empty.png", "--skip_bad_images"]),
    # the run directory
    "resume_other_flags": ("train", [*DIGITS[:-2], "--time_steps=3", "--batch_size=128",
                                     "--epochs=2", "--validation_split=0.2", "--model_dir={run}"],
                           None, ["--model_dir=", "--time_steps=2 (now 3)", "--batch_size=256 (now 128)"]),
    # eval
    "eval_unknown_flag": ("eval", ["--saved_model={export}", "--nope"], None, ["'nope'"]),
    "eval_other_validation_split": ("eval", ["--saved_model={export}", "--split=validation",
                                             "--validation_split=0.5"], None,
                                    ["--validation_split=0.5", "0.2"]),
    "eval_other_dataset_validation": ("eval", ["--saved_model={export}", "--split=validation",
                                               "--dataset=cifar10"], None,
                                      ["--dataset=cifar10", "digits"]),
    "eval_nan_weights": ("eval", ["--saved_model={nan}", "--dataset=digits"], None,
                         ["NaN or infinite weights", "diverged"]),
    # issue 18: image folders that are not datasets as they are, splits, outputs, eval inputs
    "folder_parent_of_splits": ("train", [*DIGITS, "--dataset=folder:{splits}", "--model_dir={tmp}/f3"],
                                None, ["--dataset=folder:", "sub-folders test, train",
                                       "parent of dataset splits", "/train"]),
    "folder_empty_class": ("train", [*DIGITS, "--dataset=folder:{empty_class}", "--model_dir={tmp}/f4"],
                           None, ["--dataset=folder:", "class folder c has no PNG or JPEG images"]),
    "folder_large_first_image": ("train", [*DIGITS, "--dataset=folder:{large}", "--model_dir={tmp}/f5"],
                                 None, ["--dataset=folder:", "a/0.png, is 4000x4000", "--image_size"]),
    "validation_split_leaves_nothing": ("train", [*DIGITS, "--validation_split=0.9999",
                                                  "--model_dir={tmp}/f6"],
                                        None, ["--validation_split=0.9999", "leaves none to train on"]),
    "eval_several_outputs": ("eval", ["--saved_model={multi}", "--dataset=digits"], None,
                             ["returns 2 outputs", "one output, the logits"]),
    "eval_output_json_unwritable": ("eval", ["--saved_model={export}", "--output_json={file}/r.json"],
                                    None, ["--output_json=", "is not a directory"]),
    "eval_plots_dir_unwritable": ("eval", ["--saved_model={export}", "--plots_dir={file}"], None,
                                  ["--plots_dir=", "exists and is not a directory"]),
    "eval_folder_test_split": ("eval", ["--saved_model={export}", "--dataset=folder:{splits}/test",
                                        "--split=test"], None, ["a folder has no test split",
                                                                "--split=all"]),
    # files that are not ours; faults found before training rather than after it
    "export_dir_holds_other_files": ("train", [*DIGITS, "--epochs=1", "--model_dir={tmp}/e",
                                               "--export_dir={others}"], None,
                                     ["--export_dir=", "not written there by an export",
                                      "data/, notes.txt", "move them away"]),
    "backup_folder_is_a_file": ("train", [*DIGITS, "--epochs=1", "--model_dir={backup_file}"], None,
                                ["--model_dir=", "/backup exists and is not a directory",
                                 "the backups of every epoch go there"]),
    "config_without_time_steps": ("train", [*DIGITS[:-2], "--time_steps=6", "--batch_size=256",
                                            "--epochs=2", "--validation_split=0.2",
                                            "--model_dir={incomplete}"], None,
                                  ["--model_dir=", "config.json is incomplete: it lacks --time_steps",
                                   "--restart"]),
    "eval_plain_model_of_other_classes": ("eval", ["--saved_model={plain7}", "--dataset=digits"],
                                          None, ["the dataset has 10 classes", "outputs 7"]),
}


@pytest.fixture(scope="module")
def results(digits_run, nan_export, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_input_cases")
    a_file = tmp / "a_file"
    a_file.write_text("not a directory")
    names = {"run": digits_run, "export": os.path.join(digits_run, "export"), "nan": nan_export,
             "file": str(a_file), "tmp": str(tmp), "one_class": str(tmp / "one_class"),
             "corrupt": str(tmp / "corrupt")}
    png = tf.io.encode_png(np.zeros((8, 8, 3), np.uint8)).numpy()
    for folder, classes in (("one_class", ["a"]), ("corrupt", ["a", "b"])):
        for name in classes:
            os.makedirs(tmp / folder / name)
            for i in range(3):
                (tmp / folder / name / f"{i}.png").write_bytes(png)
    (tmp / "corrupt" / "b" / "empty.png").write_bytes(b"")  # not the first file
    names.update(splits=str(tmp / "splits"), empty_class=str(tmp / "empty_class"),
                 large=str(tmp / "large"), multi=str(tmp / "multi"))
    for folder in ("splits/train/a", "splits/train/b", "splits/test/a", "splits/test/b",
                   "empty_class/a", "empty_class/b", "large/b"):
        os.makedirs(tmp / folder)
        (tmp / folder / "0.png").write_bytes(png)
    os.makedirs(tmp / "empty_class" / "c")
    os.makedirs(tmp / "large" / "a")
    (tmp / "large" / "a" / "0.png").write_bytes(
        tf.io.encode_png(np.zeros((4000, 4000, 3), np.uint8)).numpy())
    flat = keras.Input((8, 8, 1))
    hidden = keras.layers.Flatten()(flat)
    keras.Model(flat, [keras.layers.Dense(10)(hidden), keras.layers.Dense(3)(hidden)]).export(
        str(tmp / "multi"), verbose=False)
    names.update(others=str(tmp / "others"), backup_file=str(tmp / "backup_file"),
                 incomplete=str(tmp / "incomplete"), plain7=str(tmp / "plain7"))
    os.makedirs(tmp / "others" / "data")
    (tmp / "others" / "notes.txt").write_text("mine")
    (tmp / "others" / "data" / "x.csv").write_text("1,2")
    os.makedirs(tmp / "backup_file")
    (tmp / "backup_file" / "backup").write_text("not a folder")
    shutil.copytree(digits_run, tmp / "incomplete")
    with open(tmp / "incomplete" / "config.json") as f:
        config = json.load(f)
    del config["time_steps"]
    (tmp / "incomplete" / "config.json").write_text(json.dumps(config))
    keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(7)]).export(
        str(tmp / "plain7"), verbose=False)
    before = _backup_bytes(digits_run), _backup_bytes(names["incomplete"])
    jobs = {key: (program, [a.format(**names) for a in args], env)
            for key, (program, args, env, _) in TABLE.items()}
    done = _run_all(jobs)
    # The refused resumes left the runs as they were; nothing of the user's was touched.
    assert (_backup_bytes(digits_run), _backup_bytes(names["incomplete"])) == before
    assert (tmp / "others" / "notes.txt").read_text() == "mine"
    assert (tmp / "others" / "data" / "x.csv").read_text() == "1,2"
    assert not os.path.exists(tmp / "e" / "logs") and not os.path.exists(tmp / "backup_file" / "logs")
    assert (tmp / "backup_file" / "backup").read_text() == "not a folder"
    return done


def _backup_bytes(model_dir):
    backup = os.path.join(model_dir, "backup")
    return {name: open(os.path.join(backup, name), "rb").read() for name in sorted(os.listdir(backup))}


@pytest.mark.parametrize("case", sorted(TABLE))
def test_bad_input_cli_is_one_line_exit_2(results, case):
    program, _, _, words = TABLE[case]
    returncode, err = results[case]
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith(f"{program}: error: ")]
    assert len(lines) == 1, err[-3000:]
    assert returncode == 2, err[-3000:]
    for word in words:
        assert word in lines[0], lines[0]


def test_eval_uses_the_recorded_validation_split(digits_run, tmp_path):
    """The export records --validation_split=0.2; eval's default (0.1) is not used."""
    from common import datasets

    with open(os.path.join(digits_run, "export", "assets", "tandem_keras.json")) as f:
        training = json.load(f)["training"]
    expected = datasets.load("digits", validation_split=0.2).num_validation
    assert training["dataset"] == "digits" and training["validation_split"] == 0.2
    assert training["num_validation"] == expected
    assert datasets.load("digits", validation_split=0.1).num_validation != expected
    out_json = str(tmp_path / "eval.json")
    proc = subprocess.run([sys.executable, "-m", "eval", f"--saved_model={digits_run}/export",
                           "--split=validation", f"--output_json={out_json}", "--noanalysis"],
                          cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out_json) as f:
        report = json.load(f)
    assert report["examples"] == expected
    assert report["dataset"] == "digits" and report["validation_split"] == 0.2


def _api_cases():
    import tandem_keras as tk

    def other_time_steps():
        layer = tk.TandemDense(3, name="td")
        layer(np.zeros((2, 4, 5), "float32"))
        layer(np.zeros((2, 8, 5), "float32"))

    def half_spikes():
        layer = tk.TandemDense(3, name="td")
        layer(np.zeros((2, 4, 5), "float32"))
        layer(np.full((2, 4, 5), 0.5, "float32"), training=False)

    def nan_pixels():
        tk.SpikeEncoder(4, name="enc")(np.array([[np.nan, 1.0]], "float32"))

    def export_nan(tmp_path):
        model = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2, name="enc"),
                                  tk.SpikeCount(), keras.layers.Dense(3, name="logits")])
        kernel = model.get_layer("logits").kernel
        kernel.assign(np.full(kernel.shape, np.inf, "float32"))
        tk.export_model(model, str(tmp_path / "export"))

    return {  # (call, words the message must contain)
        "other_time_steps": (other_time_steps, ["td", "T=4", "T=8"]),
        "half_spikes": (half_spikes, ["td", "0/1"]),
        "nan_pixels": (nan_pixels, ["enc", "NaN"]),
        "export_non_finite": (export_nan, ["logits/kernel", "non-finite", "not exported"]),
    }


@pytest.mark.parametrize("case", ["other_time_steps", "half_spikes", "nan_pixels",
                                  "export_non_finite"])
def test_api_bad_input_raises_value_error_naming_it(case, tmp_path):
    call, words = _api_cases()[case]
    with pytest.raises(ValueError) as info:
        call(tmp_path) if case == "export_non_finite" else call()
    for word in words:
        assert word in str(info.value), str(info.value)
    assert not os.path.exists(tmp_path / "export")
