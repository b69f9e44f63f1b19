"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 train as one machine with their global batch.

Each worker is a process of its own (``multi_worker_run.py``) with its ``TF_CONFIG``; both train one
short epoch on the synthetic shards; they must end with the same weights, equal to a single-process
run on the same global batch (split by data; split by file, each worker's own batches), and only the
chief may write into the workdir.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_s2v.configs.experiments import apply_overrides, get_experiment
from keras_s2v.training import train_lib

ROOT = Path(__file__).resolve().parents[2]  # the checkout under test (an editable install may point elsewhere)
WORKERS = 2
# One epoch of 2 steps with plain SGD at a rate large enough that a wrong loss scaling (x 2 between
# one and two workers) would move the weights visibly apart; a GAN without noise, so that a worker's
# half of the batch sees the same generated frames as the single process does.
SHORT = [
    "train.epochs=1",
    "train.steps_per_epoch=2",
    "train.validation_steps=1",
    "train.optimizer=sgd",
    "train.momentum=0.0",
    "train.learning_rate=0.1",
    "train.d_frame_learning_rate=0.1",
    "train.d_sequence_learning_rate=0.1",
    "model.tgan.noise_std=0.0",
    "data.augment=false",
]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class _Weights(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.initial = self.model.get_weights()

    def on_train_end(self, logs=None):
        self.final = self.model.get_weights()


def _max_diff(a, b):
    assert len(a) == len(b)
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def _start_workers(name, data, workdir, tmp_path, overrides, run="", environ=None):
    """Both workers of ``name`` on ``data`` -> [(process, log path)]; ``run``: a tag of this start's files;
    ``environ``: {worker index: its own environment variables}."""
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(WORKERS)]
    script = Path(__file__).with_name("multi_worker_run.py")
    workers = []
    for index in range(WORKERS):
        (tmp_path / f"tmp{index}").mkdir(exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "TF_CONFIG": json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}),
            "TMPDIR": str(tmp_path / f"tmp{index}"),  # where a worker that is not the chief writes its run files
            "CUDA_VISIBLE_DEVICES": "",
            **(environ or {}).get(index, {}),
        }
        path = tmp_path / f"worker{index}{run}.log"
        args = [sys.executable, str(script), name, str(data), str(workdir), str(tmp_path / f"w{index}{run}.npz")]
        with open(path, "w") as log:
            workers.append((subprocess.Popen(args + overrides, env=env, stdout=log, stderr=subprocess.STDOUT), path))
    return workers


def _wait(workers, seconds):
    """Wait for every worker, at most ``seconds`` in all (then kill them all) -> their logs."""
    deadline = time.monotonic() + seconds
    for process, _ in workers:
        try:
            process.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p, _ in workers:
                p.kill()
            process.wait()
    return [path.read_text() for _, path in workers]


def _final_weights(tmp_path, run=""):
    return [list(np.load(tmp_path / f"w{index}{run}.npz").values()) for index in range(WORKERS)]


# A wrong loss scaling (x 2 between one and two workers) would differ by about half the step: tgan_tiny's step moves
# its weights by up to 1.45, and its three players compound float rounding to 9.7e-4 (measured; other thread
# counts or batches give up to 5.9e-3), so its bound is 1e-2. s2v_tiny: 1e-6 measured.
# data.shard_by=file: each worker reads its own shard file and draws its own samples, so the step is not the single
# process's: no tolerance, only the all-reduce (both workers end equal) is checked.
@pytest.mark.parametrize(
    "name, tolerance, shard_by", [("s2v_tiny", 1e-4, "data"), ("tgan_tiny", 1e-2, "data"), ("s2v_tiny", None, "file")]
)
def test_two_workers_train_as_one_process_on_their_global_batch(
    name, tolerance, shard_by, synth_shards, request, tmp_path
):
    data = synth_shards if shard_by == "data" else request.getfixturevalue("synth_shards_two_files")
    workdir = tmp_path / "run"
    workers = _start_workers(name, data, workdir, tmp_path, SHORT + [f"data.shard_by={shard_by}"])
    for index, ((process, _), output) in enumerate(zip(workers, _wait(workers, 300))):
        assert process.returncode == 0, output[-4000:]
        assert f"workers {WORKERS} replicas {WORKERS} chief {index == 0} input_split {shard_by} epochs 1" in output

    # The chief wrote the run; the other worker's files went to its own temporary folder, since removed.
    assert {p.name for p in workdir.iterdir()} >= {"config.json", "data.json", "checkpoints", "model.keras", "logs"}
    assert [p.name for p in (workdir / "checkpoints").iterdir()] == ["epoch_001.weights.h5"]
    assert len(json.loads((workdir / "history.json").read_text())) == 1
    assert (workdir / "samples" / "latest.png").exists()
    assert list((tmp_path / "tmp1").iterdir()) == []

    weights = _final_weights(tmp_path)
    assert _max_diff(weights[0], weights[1]) == 0.0  # the same all-reduced gradients on both
    if shard_by == "file":
        return

    # One process, one replica, the same global batch (per-replica batch x 2 workers).
    config = apply_overrides(get_experiment(name), SHORT)
    config.data.batch_size *= WORKERS
    capture = _Weights()
    train_lib.train(config, synth_shards, tmp_path / "single", extra_callbacks=[capture])
    moved = _max_diff(capture.final, capture.initial)
    assert moved > 1e-2, moved  # the step changed the weights (a GAN's: all three players)...
    # ...and the two workers the same way (float32 sums in another order: measured below 1e-5 for s2v_tiny).
    difference = _max_diff(weights[0], capture.final)
    assert difference < tolerance, (difference, moved)


# A dead worker's peers learn it from the coordination service (MultiWorkerMirroredStrategy's, led by the chief):
# once its heartbeats stop (10 s by default) their pending collective fails with UnavailableError "tasks are unhealthy
# (stopped sending heartbeats)", which train raises again as a WorkerLost that says how to resume. Measured on
# 127.0.0.1 (2 shared cores): the chief's process ended 12.0 and 35.8 s after worker 1's SIGKILL (its exit also
# waits on TensorFlow's shutdown); the bound checks that it ends (a hang would run to the 300 s deadline).
DEAD_PEER_SECONDS = 120


@pytest.mark.slow  # 56 CPU s, 85 to 140 s wall on 2 shared cores: pytest -m slow
def test_a_run_whose_worker_died_stops_and_resumes_on_both(synth_shards, tmp_path):
    """Worker 1 is SIGKILLed in epoch 2; the chief then fails (not hangs) and the same commands, started again on
    both, resume at epoch 2 from the chief's epoch 1 checkpoint and end with equal weights."""
    overrides = [o for o in SHORT if not o.startswith("train.epochs=")] + ["train.epochs=2"]
    workdir = tmp_path / "run"
    # Epoch 2's second step: its first step's all-reduce needed the chief, which had written epoch_001 by then.
    workers = _start_workers("s2v_tiny", synth_shards, workdir, tmp_path, overrides, environ={1: {"DIE_AT": "1,1"}})
    ended, deadline = {}, time.monotonic() + 300
    while len(ended) < WORKERS and time.monotonic() < deadline:
        for index, (process, _) in enumerate(workers):
            if index not in ended and process.poll() is not None:
                ended[index] = time.monotonic()
        time.sleep(0.1)
    outputs = _wait(workers, 1)  # kills whatever still runs
    chief, dead = (process.returncode for process, _ in workers)
    assert dead == -signal.SIGKILL and "dying at epoch 1 batch 1" in outputs[1], outputs[1][-4000:]
    lost = "WorkerLost: worker 0: lost /job:worker/replica:0/task:1 (it stopped sending heartbeats)"
    assert chief not in (0, None) and lost in outputs[0], outputs[0][-4000:]
    assert ended.get(0, float("inf")) - ended[1] < DEAD_PEER_SECONDS, ended  # ended, not hung
    assert [p.name for p in (workdir / "checkpoints").iterdir()] == ["epoch_001.weights.h5"]

    workers = _start_workers("s2v_tiny", synth_shards, workdir, tmp_path, overrides, run="_again")
    for index, ((process, _), output) in enumerate(zip(workers, _wait(workers, 300))):
        assert process.returncode == 0, output[-4000:]
        assert "Epoch 2/2" in output and "Epoch 1/2" not in output  # resumed after epoch 1 (EpochCheckpoints)
        assert f"workers {WORKERS} replicas {WORKERS} chief {index == 0} input_split data epochs 2" in output
    assert [r["epoch"] for r in json.loads((workdir / "history.json").read_text())] == [1, 2]
    weights = _final_weights(tmp_path, "_again")
    assert _max_diff(weights[0], weights[1]) == 0.0
