"""Shared pieces of the benchmarks: the networks, their MAC counts, the compute bound,
timing and the machine description.

The full and the width-reduced CIFARNet both come from ``models.cifarnet``
(``width_divisor``).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from typing import Callable, Dict, List, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import tandem_keras as tk  # noqa: E402


NETWORKS = ("cifarnet", "cifarnet_w4")  # full width; every width divided by 4


def build_network(name: str, time_steps: int, mode: str) -> keras.Model:
    """Builds ``"cifarnet"`` or ``"cifarnet_wK"`` (every width divided by K) with
    ``models.cifarnet``. The dtype policy in force applies.
    """
    from models.cifarnet import cifarnet

    if name == "cifarnet":
        return cifarnet(time_steps=time_steps, mode=mode)
    if not name.startswith("cifarnet_w") or not name[len("cifarnet_w"):].isdigit():
        raise ValueError(f"unknown network {name!r}; expected 'cifarnet' or 'cifarnet_wK'.")
    divisor = int(name[len("cifarnet_w"):])
    return cifarnet(time_steps=time_steps, mode=mode, width_divisor=divisor, name=name)


def layer_macs(model: keras.Model) -> List[Dict]:
    """Per-image multiply-accumulates of every conv / dense layer of ``model`` (Eq. 14),
    from ``tk.describe_model`` and ``tk.synops.macs`` (the encoder's analog convolution
    is its own row). ``spiking`` marks the tandem layers (they run T times in the SNN
    forward).
    """
    from tandem_keras import synops

    return [{"layer": spec["layer"], "macs": int(synops.macs(spec)), "spiking": row["kind"] == "tandem"}
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


def compile_for_training(model: keras.Model, jit_compile: bool) -> keras.Model:
    """Adam 1e-3 and sparse cross-entropy on logits (method §8)."""
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit_compile)
    return model


def interleaved_timing(steps: Dict[str, Callable[[], None]], repeats: int,
                       cpu_times: Dict[str, List[float]] = None) -> Dict[str, List[float]]:
    """Runs every callable ``repeats`` times, round-robin, and returns the wall times.

    Round-robin keeps a slow drift of the machine's load (other jobs on the shared
    cores) out of the ratios between the entries. If ``cpu_times`` is given, the
    process CPU time (user + system, all threads) of every call is appended to it.
    """
    times = {key: [] for key in steps}
    for _ in range(repeats):
        for key, step in steps.items():
            cpu = time.process_time()
            start = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - start)
            if cpu_times is not None:
                cpu_times.setdefault(key, []).append(time.process_time() - cpu)
    return times


def median(values: Sequence[float]) -> float:
    """The median (upper median for an even count)."""
    return sorted(values)[len(values) // 2]


def machine() -> Dict[str, str]:
    """A short description of the machine and the software."""
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {"cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "loadavg_1_5_15": " ".join(f"{v:.2f}" for v in load),
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss, KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    """Current resident set size of this process, in MiB (from /proc/self/statm)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_subprocess(module: str, args: Sequence[str], env: Dict[str, str] = None) -> Dict:
    """Runs ``python -m module args`` in a fresh process (``env`` added to the environment);
    returns its last stdout line as JSON."""
    command = [sys.executable, "-m", module, *args]
    env = dict(os.environ, **(env or {}))
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return json.loads(lines[-1])


def flag_config() -> Dict:
    """The values of the bench module's own absl flags (the record's ``config``)."""
    from absl import flags

    found = {}
    for module, module_flags in flags.FLAGS.flags_by_module_dict().items():
        if module.startswith("bench") or f"{os.sep}bench{os.sep}" in module:
            for flag in module_flags:
                found[flag.name] = flag.value
    return found


def write_record(kind: str, figures: Dict, out: str = "") -> Dict:
    """Appends the result ``figures`` as a ``bench.records`` record of ``kind`` (config: the
    module's flags; command, commit, versions, machine and date stamped) to ``out``
    (default ``bench/results/records.jsonl``); returns the record."""
    from bench import records

    figures = {k: v for k, v in figures.items() if k != "machine"}
    record = records.write(kind, figures, flag_config(), path=out or records.RECORDS)
    print(f"appended a {kind} record to {out or records.RECORDS}")
    return record
