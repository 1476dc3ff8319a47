"""Shared pieces of the benchmarks: the networks, their MAC counts, the compute bound,
timing and the machine description.

The full CIFARNet comes from ``models.cifarnet`` (the project's builder). The
width-reduced CIFARNet (every layer's channels times ``width``) is built here from the
public ``tandem_keras`` layers with the same layer table and order as
``models._builder.build_classifier`` (normalize, analog encoder conv + BN, SpikeEncoder,
tandem convs, TimeFlatten, tandem dense, SpikeCount, dropout, Dense logits).
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

CIFARNET_CONVS = ((256, 2), (512, 2), (1024, 1), (512, 1))
CIFARNET_ENCODER = 128
CIFARNET_DENSE = 1024
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)

NETWORKS = ("cifarnet", "cifarnet_w4")  # full width; every width divided by 4


def build_network(name: str, time_steps: int, mode: str) -> keras.Model:
    """Builds ``"cifarnet"`` (models.cifarnet) or ``"cifarnet_wK"`` (widths divided by K).

    The dtype policy in force (``keras.mixed_precision.set_global_policy``) applies.
    """
    if name == "cifarnet":
        from models.cifarnet import cifarnet

        return cifarnet(time_steps=time_steps, mode=mode)
    if not name.startswith("cifarnet_w"):
        raise ValueError(f"unknown network {name!r}; expected 'cifarnet' or 'cifarnet_wK'.")
    divisor = int(name[len("cifarnet_w"):])
    return reduced_cifarnet(divisor, time_steps, mode)


def reduced_cifarnet(divisor: int, time_steps: int, mode: str, num_classes: int = 10) -> keras.Model:
    """CIFARNet with every layer's width divided by ``divisor`` (same layers otherwise)."""
    layers = keras.layers
    images = keras.Input((32, 32, 3), name="images")
    x = layers.Normalization(mean=[255.0 * m for m in CIFAR10_MEAN],
                             variance=[(255.0 * s) ** 2 for s in CIFAR10_STD], name="normalize")(images)
    x = layers.Conv2D(CIFARNET_ENCODER // divisor, 3, padding="same", use_bias=False,
                      name="encoder_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, name="encoder_bn")(x)
    x = tk.SpikeEncoder(time_steps, mode=mode, name="encoder")(x)
    for i, (filters, stride) in enumerate(CIFARNET_CONVS, start=1):
        x = tk.TandemConv2D(filters // divisor, 3, strides=stride, padding="same", mode=mode,
                            name=f"tandem_conv{i}")(x)
    x = tk.TimeFlatten(name="flatten")(x)
    x = tk.TandemDense(CIFARNET_DENSE // divisor, mode=mode, name="tandem_dense1")(x)
    x = tk.SpikeCount(name="spike_count")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    logits = layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(images, logits, name=f"cifarnet_w{divisor}")


def layer_macs(model: keras.Model) -> List[Dict]:
    """Per-image multiply-accumulates of every conv / dense layer of ``model``.

    Conv: ``H_out W_out k_h k_w C_in C_out``; dense: ``F_in F_out``. ``spiking`` marks
    the tandem layers (they run T times in the SNN forward).
    """
    rows = []
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, tk.TandemConv2D)):
            out = layer.output.shape
            kh, kw, cin, cout = layer.kernel.shape
            macs = int(out[-3] * out[-2] * kh * kw * cin * cout)
        elif isinstance(layer, (keras.layers.Dense, tk.TandemDense)):
            fin, fout = layer.kernel.shape
            macs = int(fin * fout)
        else:
            continue
        rows.append({"layer": layer.name, "macs": macs,
                     "spiking": isinstance(layer, tk.TandemLayer)})
    return rows


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
    """Adam 1e-3 and sparse cross-entropy on logits (SPEC 8)."""
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


def write_json(path: str, payload: Dict) -> None:
    """Writes ``payload`` (with the machine description) as indented JSON."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=1)
