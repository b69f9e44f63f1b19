"""One worker of a multi-worker run: ``train_lib.train(..., strategy="multi_worker")``, what
``python -m keras_s2v.train --strategy multi_worker`` calls, with the cluster in ``TF_CONFIG``.

    multi_worker_run.py EXPERIMENT DATA WORKDIR WEIGHTS.npz [OVERRIDE ...]

writes this worker's weights after training to WEIGHTS.npz (a worker that is not the chief
writes nothing else that outlives the run) and prints the train result's summary. With
``DIE_AT=EPOCH,BATCH`` in its environment the worker kills itself (SIGKILL: no cleanup, as a
machine that goes down) when that batch of that epoch (both from 0) begins.
"""

import os
import signal
import sys

import keras
import numpy as np

from keras_s2v.configs.experiments import apply_overrides, get_experiment
from keras_s2v.training import train_lib


class SaveFinalWeights(keras.callbacks.Callback):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_train_end(self, logs=None):
        np.savez(self.path, *self.model.get_weights())


class DieAt(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            print(f"dying at epoch {self.epoch} batch {batch}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


def main(name, data, workdir, weights, *overrides):
    config = apply_overrides(get_experiment(name), list(overrides))
    callbacks = [SaveFinalWeights(weights)]
    if os.environ.get("DIE_AT"):
        callbacks.append(DieAt(*map(int, os.environ["DIE_AT"].split(","))))
    result = train_lib.train(config, data, workdir, strategy="multi_worker", extra_callbacks=callbacks)
    summary = {k: result[k] for k in ("workers", "replicas", "chief", "input_split")}
    print(" ".join(f"{k} {v}" for k, v in summary.items()), "epochs", len(result["epochs"]))


if __name__ == "__main__":
    main(*sys.argv[1:])
