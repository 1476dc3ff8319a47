"""``--strategy=multi_worker``: two local worker processes (TF_CONFIG on 127.0.0.1) train and export."""
import json
import os
import socket
import subprocess

import numpy as np
import pytest

from tests._train_helpers import check_export, python_m_train


pytestmark = pytest.mark.slow


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    model_dir = tmp_path / "model"
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(python_m_train(
            "--model=digits", "--dataset=digits", "--epochs=1", "--batch_size=128",
            "--time_steps=2", "--strategy=multi_worker", f"--model_dir={model_dir}",
            env={"TF_CONFIG": json.dumps(tf_config)},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    errors = [proc.communicate(timeout=600)[1] for proc in procs]
    for proc, err in zip(procs, errors):
        assert proc.returncode == 0, err[-3000:]
    # 2 replicas, one per worker, each with half of the global batch.
    assert "(64 per replica x 2 replicas)" in errors[0]
    # Both workers log the same epoch metrics: the metric variables are summed over replicas.
    summary = [[line.split("] ", 1)[1] for line in err.splitlines() if "] epoch 1/1:" in line]
               for err in errors]
    strip_time = [[s.rsplit(" (", 1)[0] for s in lines] for lines in summary]
    assert len(strip_time[0]) == 1 and strip_time[0] == strip_time[1]
    # The chief (worker 0) writes the model directory and the export; worker 1 its own corner.
    assert os.path.exists(model_dir / "flags.txt")
    assert os.path.exists(model_dir / "workers" / "worker_1" / "backup")
    images = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 1)).astype("float32")
    check_export(str(model_dir / "export"), images)
