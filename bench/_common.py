"""What the benchmark programs share: start-up as ``python -m train`` (TensorFlow's start-up
lines held back, a bad flag in one line), the networks, their MACs and compute bound,
synthetic data, round-robin timing, and the record each program appends and prints.

The full and the width-reduced CIFARNet both come from ``models.cifarnet``
(``width_divisor``); every model is compiled by ``train.recipe`` (Adam 1e-3, cross-entropy
on the logits, the top-1 / top-5 metrics of ``python -m train``).
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable, Dict, List, NoReturn, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from train import console  # noqa: E402

with console.quiet_tensorflow_startup():
    from absl import app, flags
    import keras
    import numpy as np

    import tandem_keras as tk
    from bench import records
    from train import recipe

median = statistics.median_high  # the benchmarks' median: the upper one for an even count


def build_network(name: str, time_steps: int, mode: str) -> keras.Model:
    """Builds a CIFAR network of ``models.BUILDERS`` (``"cifarnet"``, ``"resnet20"``,
    ``"vgg11"``, ...) or ``"<name>_wK"`` (every width divided by K). The dtype policy in force
    applies.
    """
    import models

    base, _, divisor = name.partition("_w")
    if base not in models.BUILDERS or (divisor and not divisor.isdigit()):
        raise ValueError(f"unknown network {name!r}; expected one of {', '.join(sorted(models.BUILDERS))}, "
                         "optionally with _wK (width / K), e.g. 'cifarnet_w4'.")
    extra = {"width_divisor": int(divisor)} if divisor else {}
    return models.BUILDERS[base](time_steps=time_steps, mode=mode, name=name, **extra)


def compile_model(model: keras.Model, jit_compile: bool = False, num_classes: int = 10) -> keras.Model:
    """``model`` compiled by ``train.recipe`` with a constant learning rate of 1e-3."""
    from types import SimpleNamespace

    values = SimpleNamespace(learning_rate=1e-3, lr_schedule="constant", epochs=1, weight_decay=0.0,
                             jit_compile=jit_compile, run_eagerly=False)
    return recipe.compile_model(model, values, num_classes, steps_per_epoch=1)


def compiled_network(name: str, time_steps: int, mode: str, jit_compile: bool = False) -> keras.Model:
    """:func:`build_network` compiled by :func:`compile_model`."""
    return compile_model(build_network(name, time_steps, mode), jit_compile)


def layer_macs(model: keras.Model) -> List[Dict]:
    """Per-image multiply-accumulates of every conv / dense layer of ``model`` (Eq. 14),
    from ``tk.describe_model`` and ``tk.synops.macs`` (the encoder's analog convolution
    is its own row). ``spiking`` marks the tandem layers (they run T times in the SNN
    forward).
    """
    return [{"layer": spec["layer"], "macs": int(tk.synops.macs(spec)), "spiking": row["kind"] == "tandem"}
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


def usage_error(message: str) -> NoReturn:
    """Bad input, as ``python -m train`` reports it: one line ``PROGRAM: error: MESSAGE``, exit 2."""
    console.usage_error(records._main_module(), message)


def run(main: Callable[[List[str]], None]) -> None:
    """``app.run(main)`` with ``python -m train``'s handling of flag errors (one line, exit 2)."""
    app.run(main, flags_parser=console.flags_parser(records._main_module()))
