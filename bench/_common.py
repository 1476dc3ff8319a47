"""What the benchmark programs share: start-up as ``python -m train`` (TensorFlow's start-up
lines held back, a bad flag in one line), the networks, their MACs and compute bound,
synthetic data, round-robin timing, and the record each program appends and prints.

A network is a CIFAR model of ``models.BUILDERS`` by name (``"cifarnet"``, ``"resnet20"``,
``"vgg11"``, ...), ``"cifarnet_w4"`` with every width divided by 4;
it is built and compiled by ``train.recipe`` (Adam 1e-3, cross-entropy on the logits, the
top-1 / top-5 metrics of ``python -m train``), as ``python -m train`` builds it.
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


def is_network(names: str | Sequence[str]) -> bool:
    """Whether every name is a model of ``models`` (``"cifarnet"``), optionally with every
    width divided by K (``"cifarnet_w4"``)."""
    return all((m := NETWORK.fullmatch(name)) and m["model"] in models.BUILDERS
               for name in ([names] if isinstance(names, str) else names))


def check_network_flag(name: str) -> None:
    """Refuses an unknown network in flag ``name`` as a bad flag (one line, exit 2)."""
    flags.register_validator(name, is_network, f"unknown network; expected a model of models "
                                               f"({', '.join(models.BUILDERS)}), optionally with '_wK' "
                                               "(every width divided by K)")


def recipe_config(name: str, time_steps: int, mode: str, jit_compile: bool = False) -> TrainConfig:
    """The ``TrainConfig`` of a benchmark network on CIFAR-sized images: the model of ``name``
    (see :func:`is_network`), Adam at a constant learning rate of 1e-3 (TrainConfig's)."""
    match = NETWORK.fullmatch(name)
    if not is_network(name):
        raise ValueError(f"unknown network {name!r}; expected one of {', '.join(models.BUILDERS)}, "
                         "or one with '_wK' (every width divided by K)")
    return TrainConfig(model=match["model"], width_divisor=int(match["divisor"] or 1), time_steps=time_steps,
                       mode=mode, model_name=name, lr_schedule="constant", jit_compile=jit_compile)


def build_network(name: str, time_steps: int, mode: str) -> keras.Model:
    """The network ``name`` (see :func:`is_network`) built by ``train.recipe`` for 32x32x3
    images and 10 classes. The dtype policy in force applies."""
    return recipe.build_model(recipe_config(name, time_steps, mode), (32, 32, 3), 10)


def compile_model(model: keras.Model, jit_compile: bool = False, num_classes: int = 10) -> keras.Model:
    """``model`` compiled by ``train.recipe`` (Adam at a constant 1e-3, cross-entropy, top-1/5)."""
    return recipe.compile_model(model, recipe_config("cifarnet", 1, "tandem", jit_compile), num_classes,
                                steps_per_epoch=1)


def compiled_network(name: str, time_steps: int, mode: str, jit_compile: bool = False) -> keras.Model:
    """:func:`build_network` compiled by :func:`compile_model`."""
    return compile_model(build_network(name, time_steps, mode), jit_compile)


def layer_macs(model: keras.Model) -> List[Dict]:
    """Per-image multiply-accumulates of every conv / dense layer of ``model`` (Eq. 14),
    from ``tk.describe_model`` and ``tk.synops.macs`` (the encoder's analog convolution
    is its own row). ``spiking`` marks the tandem layers, with neurons or synapse-only (they
    run T times in the SNN forward).
    """
    return [{"layer": spec["layer"], "macs": int(tk.synops.macs(spec)),
             "spiking": row["kind"] in ("tandem", "synapses")}
            for row in tk.describe_model(model)["layers"] for spec in row["mac_specs"]]


def compute_bounds(rows: Sequence[Dict], time_steps: int) -> Dict[str, float]:
    """Tandem/ANN training-step cost ratios from MACs.

    ``F`` = forward MACs of the ANN, ``S`` = MACs of the spiking layers, ``B`` = the
    backward (input and weight gradients, ``2F``, minus the first layer's input gradient
    that nobody needs). Issue 6's bound counts one ANN forward, T SNN forwards of the
    spiking layers and one backward: ``(F + T S + B) / (F + B)`` (about (T+3)/3).
    This library never runs the coupled ANN's forward convolution of a spiking layer
    (``W c_in = sum_t W s(t)``), so its own bound is ``(F - S + T S + B) / (F + B)``.
    BPTT: ``(F - S + T S + B - 2S + 2 T S) / (F + B)`` (per-step input and weight grads).
    """
    total = sum(r["macs"] for r in rows)
    spiking = sum(r["macs"] for r in rows if r["spiking"])
    backward = 2 * total - rows[0]["macs"]
    ann = total + backward
    return {
        "macs_forward": total,
        "macs_spiking": spiking,
        "bound_issue": (total + time_steps * spiking + backward) / ann,
        "bound_shared": (total - spiking + time_steps * spiking + backward) / ann,
        "bound_bptt": (total - spiking + time_steps * spiking + backward - 2 * spiking
                       + 2 * time_steps * spiking) / ann,
    }


def synthetic_batch(batch: int, seed: int = 0):
    """CIFAR-sized images (pixel values 0..255) and integer labels."""
    rng = np.random.RandomState(seed)
    images = rng.randint(0, 256, (batch, 32, 32, 3)).astype("float32")
    labels = rng.randint(0, 10, (batch,)).astype("int32")
    return images, labels


def interleaved_timing(steps: Dict[str, Callable[[], None]], repeats: int) -> tuple[Dict[str, List[float]], ...]:
    """Runs every callable ``repeats`` times, round-robin; returns the wall times and the
    process CPU times (user + system, all threads) of every call, by key.

    Round-robin keeps a slow drift of the machine's load (other jobs on the shared
    cores) out of the ratios between the entries.
    """
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
    """Runs ``python -m module *args`` in a fresh process with ``environment`` added to this
    one's and returns the JSON object of its last stdout line that starts with ``{`` (the
    child's measurement); a child that fails or prints none raises, with its stderr's tail."""
    command = [sys.executable, "-m", module, *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False,
                            env=dict(os.environ, **environment))
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return json.loads(lines[-1])


def finish(kind: str, figures: Dict, table: Callable[[dict], str], out: str = "") -> dict:
    """Appends ``figures`` as a ``bench.records`` record of ``kind`` (config: the program's
    flags) to ``out`` (default ``bench/results/records.jsonl``), prints ``table(record)`` (the
    table ``python -m bench.tables`` makes of it) and where the record went."""
    config = {flag.name: flag.value for module, module_flags in flags.FLAGS.flags_by_module_dict().items()
              if module.startswith("bench") or f"{os.sep}bench{os.sep}" in module for flag in module_flags}
    record = records.write(kind, figures, config, path=out or records.RECORDS)
    print(table(record))
    print(f"appended a {kind} record to {out or records.RECORDS}")
    return record


def export_copy(source: str, to: str, converted_from: str = "") -> None:
    """Exports ``source/model.keras`` again to ``to``: uncompiled (no optimizer state), the
    dataset named portably, the export's training metadata kept."""
    from tandem_keras.saved_model import load_metadata

    loaded = keras.models.load_model(os.path.join(source, "model.keras"), compile=False)
    model = keras.Model.from_config(loaded.get_config())  # never compiled: no optimizer state
    model.set_weights(loaded.get_weights())
    training = dict(load_metadata(source).get("training") or {})
    if "converted_from" in training:
        training["converted_from"] = converted_from or os.path.basename(
            os.path.normpath(training["converted_from"]))
    tk.export_model(model, to, training=training, keras_file="model.keras")
    print(f"exported {source} to {to} (model.keras "
          f"{os.path.getsize(os.path.join(to, 'model.keras')) / 2**20:.1f} MiB)")


def export_bytes(path: str) -> int:
    """Bytes of the SavedModel in ``path`` (``model.keras`` apart)."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
               if f != "model.keras")


def usage_error(message: str) -> NoReturn:
    """Bad input, as ``python -m train`` reports it: one line ``PROGRAM: error: MESSAGE``, exit 2."""
    console.usage_error(records._main_module(), message)


def run(main: Callable[[List[str]], None]) -> None:
    """``app.run(main)`` with ``python -m train``'s handling of flag errors (one line, exit 2)."""
    app.run(main, flags_parser=console.flags_parser(records._main_module()))
