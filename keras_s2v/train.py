"""Train a named experiment on prepared shards.

    python -m keras_s2v.train --data SHARDS --workdir DIR --experiment s2v [--override train.epochs=10 ...]
    TF_CONFIG=... python -m keras_s2v.train ... --strategy multi_worker   # on every machine of the cluster

Running the same command again resumes from the last finished epoch.
"""

from __future__ import annotations

import os

# oneDNN kernels: about 2x faster CPU training here (a lips-at-a-glance step at width 0.25, batch 8:
# 1.4 s against 2.6 s); TensorFlow turns them on by itself only on AVX-512 CPUs. Before TF is imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from absl import app, flags

from keras_s2v.configs import experiments

_DATA = flags.DEFINE_string("data", None, "Folder of prepared shards (python -m keras_s2v.prepare).", required=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: config, checkpoints, logs, model.keras.", required=True)
_EXPERIMENT = flags.DEFINE_string("experiment", "s2v", "Named experiment: " + ", ".join(experiments.experiment_names()))
_OVERRIDE = flags.DEFINE_multi_string("override", [], "Config field override, e.g. train.epochs=3 (repeatable).")
_STRATEGY = flags.DEFINE_enum(
    "strategy",
    "mirrored",
    ["mirrored", "multi_worker"],
    "mirrored: this machine's GPUs (or CPU); multi_worker: MultiWorkerMirroredStrategy over the machines in "
    "TF_CONFIG, the same command on each (README: Training on several machines).",
)


def main(argv):
    del argv
    from keras_s2v import cli
    from keras_s2v.training.distribute import WorkerLost

    return cli.run_main(
        _train, (WorkerLost,), interrupted="interrupted: every finished epoch is saved; the same command resumes"
    )


def _train() -> str:
    from keras_s2v.training import train_lib

    config = experiments.apply_overrides(experiments.get_experiment(_EXPERIMENT.value), _OVERRIDE.value)
    result = train_lib.train(config, _DATA.value, _WORKDIR.value, strategy=_STRATEGY.value)
    last = result["epochs"][-1] if result["epochs"] else {}
    where = f"{result['replicas']} replica(s)"
    if result["workers"] > 1:
        where += f" on {result['workers']} workers" + ("" if result["chief"] else "; the chief wrote the workdir")
    return f"trained {config.name} ({where}); best model: {result['model']}; " + ", ".join(
        f"{k} {v:.4g}" for k, v in last.items() if k != "epoch"
    )


if __name__ == "__main__":
    app.run(main)
