"""What the benchmarks share: start-up as ``python -m train``'s (TensorFlow's start-up lines
held back, a bad flag in one line), the networks, their MACs and compute bound, synthetic
data, round-robin timing, fresh processes, and the record each program appends. A network is
a CIFAR model of ``models.BUILDERS`` by name, ``"cifarnet_w4"`` with every width divided by
4, built and compiled by ``train.recipe`` (Adam at a constant 1e-3) as ``python -m train`` does.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, NoReturn, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import console  # noqa: E402

with console.quiet_tensorflow_startup():
    from absl import app, flags
    import keras
    import numpy as np

    import models
    import tandem_keras as tk
    from bench import records
    from train import recipe
    from train.config import TrainConfig

median = statistics.median_high  # the benchmarks' median: the upper one for an even count
NETWORK = re.compile(r"(?P<model>\w+?)(?:_w(?P<divisor>[1-9]\d*))?")  # "cifarnet", "cifarnet_w4"
EXPECTED = f"a model of models ({', '.join(models.BUILDERS)}), optionally '_wK' (every width / K)"


def is_network(names: str | Sequence[str]) -> bool:
    """Whether every name is a model of ``models``, optionally ``_wK`` (every width / K)."""
    return all((m := NETWORK.fullmatch(name)) and m["model"] in models.BUILDERS
               for name in ([names] if isinstance(names, str) else names))


def check_network_flag(name: str) -> None:
    """Refuses an unknown network in flag ``name`` as a bad flag (one line, exit 2)."""
    flags.register_validator(name, is_network, f"unknown network; expected {EXPECTED}")


def compiled_network(name: str, time_steps: int, mode: str, jit_compile: bool = False,
                     compiled: bool = True) -> keras.Model:
    """The network ``name`` for 32x32x3 images, 10 classes, in the dtype policy in force."""
    if not is_network(name):
        raise ValueError(f"unknown network {name!r}; expected {EXPECTED}")
    match = NETWORK.fullmatch(name)
    config = TrainConfig(model=match["model"], width_divisor=int(match["divisor"] or 1), time_steps=time_steps,
                         mode=mode, model_name=name, lr_schedule="constant", jit_compile=jit_compile)
    model = recipe.build_model(config, (32, 32, 3), 10)
    return recipe.compile_model(model, config, 10, steps_per_epoch=1) if compiled else model


def layer_macs(model: keras.Model) -> List[Dict]:
    """Per-image multiply-accumulates of every conv / dense layer (Eq. 14, ``tk.describe_model``);
    ``spiking``: a tandem layer, with neurons or synapse-only (run T times in the SNN)."""
    return [{"layer": spec["layer"], "macs": int(tk.synops.macs(spec)),
             "spiking": row["kind"] in ("tandem", "synapses")}
            for row in tk.describe_model(model)["layers"] for spec in row["mac_specs"]]


def compute_bounds(rows: Sequence[Dict], time_steps: int) -> Dict[str, float]:
    """Tandem/ANN training-step cost ratios from MACs (``F`` forward, ``S`` of the spiking
    layers, ``B = 2F`` minus the first layer's input gradient): ``bound_issue``, one ANN forward,
    T SNN forwards and one backward, ``(F + T S + B) / (F + B)``; the library's, which never
    runs a spiking layer's coupled-ANN forward (``W c = sum_t W s(t)``), ``(F - S + T S + B) /
    (F + B)``; BPTT's, ``... - 2S + 2 T S``."""
    total = sum(r["macs"] for r in rows)
    spiking = sum(r["macs"] for r in rows if r["spiking"])
    backward = 2 * total - rows[0]["macs"]
    shared = total - spiking + time_steps * spiking + backward
    return {"macs_forward": total, "macs_spiking": spiking,
            "bound_issue": (total + time_steps * spiking + backward) / (total + backward),
            "bound_shared": shared / (total + backward),
            "bound_bptt": (shared - 2 * spiking + 2 * time_steps * spiking) / (total + backward)}


def trained_model(path: str, flag: str) -> keras.Model:
    """The model of ``path`` (a ``.keras`` file or an export directory, its ``model.keras``),
    uncompiled; a missing file is a bad ``--flag``."""
    file = os.path.join(path, "model.keras") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        usage_error(f"--{flag}={path}: no .keras file (an export directory holds model.keras)")
    return keras.models.load_model(file, compile=False)


def split_batches(dataset: str, validation_split: float, batch_size: int):
    """``python -m train``'s split of ``dataset``: the source, its validation batches (250
    images, cached) and its training batches without augmentation (for calibration)."""
    from common import datasets, pipeline

    source = datasets.load(dataset, validation_split=validation_split)
    return (source, pipeline.eval_batches(source, "validation", batch_size=250).cache(),
            pipeline.eval_batches(source, "train", batch_size=batch_size))


def val_error(model: keras.Model, batches) -> float:
    """Top-1 error (%) on ``batches`` (ties to the lower class, as ``python -m eval``)."""
    import tensorflow as tf

    predict = tf.function(lambda x: model(x, training=False))
    wrong = total = 0
    for x, y in batches:
        wrong += int(np.sum(np.asarray(predict(x)).argmax(-1) != np.asarray(y)))
        total += len(y)
    return 100.0 * wrong / total


def cosine_training(model: keras.Model, source, learning_rate: float, epochs: int, steps: int,
                    batch_size: int, seed: int, ema_momentum: float = 0.0):
    """Compiles ``model`` as the recipe does (Adam, cosine decay over ``epochs`` x ``steps``, no
    weight decay, the weights' moving average with ``ema_momentum`` > 0); returns enough
    training batches (CIFAR crop and flip) for those steps."""
    from common import pipeline

    config = TrainConfig(learning_rate=learning_rate, lr_schedule="cosine", epochs=epochs,
                         weight_decay=0.0, ema_momentum=ema_momentum, jit_compile=False)
    recipe.compile_model(model, config, source.num_classes, steps)
    return pipeline.train_batches(source, batch_size=batch_size, seed=seed, start_epoch=0,
                                  epochs=-(-epochs * steps // (source.num_train // batch_size)),
                                  augment="cifar")


def save_trained(model: keras.Model, source, save_dir: str = "", export_dir: str = "",
                 **training) -> None:
    """An uncompiled copy of ``model`` saved to ``save_dir/model.keras`` and exported to
    ``export_dir`` as ``python -m train`` does, ``training`` (the split) in its metadata."""
    from common import datasets
    from train.export import export

    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    if save_dir:
        os.makedirs(save_dir, exist_ok=True)
        copy.save(os.path.join(save_dir, "model.keras"))
    if export_dir:
        export(copy, export_dir, source=source, training={
            "split_seed": datasets.SPLIT_SEED, "num_train": source.num_train,
            "num_validation": source.num_validation, **training})


def synthetic_batch(batch: int, seed: int = 0):
    """CIFAR-sized images (pixel values 0..255) and integer labels."""
    rng = np.random.RandomState(seed)
    return (rng.randint(0, 256, (batch, 32, 32, 3)).astype("float32"),
            rng.randint(0, 10, (batch,)).astype("int32"))


def interleaved_timing(steps: Dict[str, Callable[[], None]], repeats: int) -> tuple[Dict[str, List[float]], ...]:
    """Wall and CPU times of ``repeats`` calls of each callable, round-robin (so that a drift of
    the shared machine's load hits each alike)."""
    wall: Dict[str, List[float]] = {key: [] for key in steps}
    cpu: Dict[str, List[float]] = {key: [] for key in steps}
    for _ in range(repeats):
        for key, step in steps.items():
            cpu_start, start = time.process_time(), time.perf_counter()
            step()
            wall[key].append(time.perf_counter() - start)
            cpu[key].append(time.process_time() - cpu_start)
    return wall, cpu


def run_child(module: str, args: Sequence[str], **environment: str) -> dict:
    """``python -m module *args`` in a fresh process with ``environment`` added: the JSON object
    of its last stdout line that starts with ``{``; a child that fails raises, with its stderr."""
    command = [sys.executable, "-m", module, *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False,
                            env=dict(os.environ, **environment))
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return json.loads(lines[-1])


def finish(kind: str, figures: Dict, table: Callable[[dict], str], out: str = "") -> dict:
    """Appends ``figures`` as a record of ``kind`` (config: the bench program's flags) to ``out``
    (default ``bench/results/records.jsonl``) and prints its table."""
    config = {flag.name: flag.value for module, module_flags in flags.FLAGS.flags_by_module_dict().items()
              if module.startswith("bench") or f"{os.sep}bench{os.sep}" in module for flag in module_flags}
    record = records.write(kind, figures, config, path=out or records.RECORDS)
    print(table(record))
    print(f"appended a {kind} record to {out or records.RECORDS}")
    return record


def _program() -> str:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name if spec is not None and spec.name else os.path.basename(sys.argv[0])


def usage_error(message: str) -> NoReturn:
    """Bad input, as ``python -m train`` reports it: one line ``PROGRAM: error: ...``, exit 2."""
    console.usage_error(_program(), message)


def run(main: Callable[[List[str]], None]) -> None:
    """``app.run(main)`` with ``python -m train``'s handling of flag errors (one line, exit 2)."""
    app.run(main, flags_parser=console.flags_parser(_program()))
