"""One worker of a multi-worker run: ``train_lib.train(..., strategy="multi_worker")``, what
``python -m keras_s2v.train --strategy multi_worker`` calls, with the cluster in ``TF_CONFIG``.

    multi_worker_run.py EXPERIMENT DATA WORKDIR WEIGHTS.npz [OVERRIDE ...]

writes this worker's weights after training to WEIGHTS.npz (a worker that is not the chief
writes nothing else that outlives the run) and prints the train result's summary.
"""

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


def main(name, data, workdir, weights, *overrides):
    config = apply_overrides(get_experiment(name), list(overrides))
    result = train_lib.train(
        config, data, workdir, strategy="multi_worker", extra_callbacks=[SaveFinalWeights(weights)]
    )
    summary = {k: result[k] for k in ("workers", "replicas", "chief", "input_split")}
    print(" ".join(f"{k} {v}" for k, v in summary.items()), "epochs", len(result["epochs"]))


if __name__ == "__main__":
    main(*sys.argv[1:])
