"""``tf.distribute`` strategies for ``--strategy`` and the chief/worker roles they imply.

- ``one_device``: the first GPU (``OneDeviceStrategy``), else the CPU through TensorFlow's
  default strategy (one replica, no distribution): on the CPU ``OneDeviceStrategy("/cpu:0")``
  made ``fit`` on the input pipeline about 2x slower (a CIFARNet / 4 epoch of 703 steps on a
  2-core AMD EPYC: about 7 min, then about 4 min with the default strategy; bench/RESULTS.md).
- ``mirrored``: ``MirroredStrategy`` over all GPUs, or over all logical CPUs when there is
  no GPU (``--cpu_devices=N`` splits the CPU into N logical devices, for trying it out).
- ``multi_worker``: ``MultiWorkerMirroredStrategy``; the cluster comes from ``TF_CONFIG``.
- ``tpu``: ``TPUStrategy`` on the TPU named by ``--tpu`` (empty: the local/default TPU).
- ``auto``: ``multi_worker`` when ``TF_CONFIG`` names more than one task, ``mirrored`` with
  more than one GPU, else ``one_device``.

Under every strategy ``--batch_size`` is the global batch, split evenly across the
``strategy.num_replicas_in_sync`` replicas.
"""
from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


def configure_cpu_devices(count: int) -> None:
    """Splits the first physical CPU into ``count`` logical devices (before TF initializes)."""
    if count <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count
        )
    except RuntimeError:  # runtime already initialized (e.g. inside a test process)
        pass


def _cluster_size() -> int:
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return sum(len(tasks) for tasks in cluster.values())


def make_strategy(name: str, tpu: str = "") -> tf.distribute.Strategy:
    """Creates the strategy named by ``--strategy`` (see the module docstring).

    Example:
      >>> make_strategy("one_device").num_replicas_in_sync
      1
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    # Physical, not logical, devices: listing logical ones starts the runtime, after which
    # multi-worker collectives can no longer be configured.
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        if _cluster_size() > 1:
            name = "multi_worker"
        elif len(gpus) > 1:
            name = "mirrored"
        else:
            name = "one_device"
    if name == "one_device":
        if gpus:
            return tf.distribute.OneDeviceStrategy("/gpu:0")
        return tf.distribute.get_strategy()   # the default strategy (see the module docstring)
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def worker_role(strategy: tf.distribute.Strategy) -> tuple[bool, str]:
    """``(is_chief, task_name)``: only the chief writes the model directory and the export.

    Single-process strategies are always the chief. In a multi-worker cluster the chief is
    the ``chief`` task, or worker 0 when the cluster has no ``chief`` task.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None) or 0
    if task_type is None or isinstance(strategy, tf.distribute.TPUStrategy):
        return True, "chief"
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)
    return is_chief, f"{task_type}_{task_id}"
