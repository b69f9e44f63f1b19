"""Training steps/s of every model kind with and without XLA (``train.jit_compile``), in one process.

    .venv/bin/python benchmarks/xla_bench.py --data SHARDS [--suffix _tiny] [--steps 10] [--batch 4]

For each kind: the trainable ``train`` builds (a glance model around untrained helpers), one real batch
from the shards, ``--steps`` timed ``train_on_batch`` calls after two warm-up ones (tracing and XLA
compilation excluded), first without XLA then with it; prints steps/s of each and their ratio.
On a loaded machine, compare the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as python -m keras_s2v.train

KINDS = {"speech2vid": "s2v", "deblur": "deblur", "syncnet": "syncnet", "tgan": "tgan", "glance": "glance"}


def trainable(config):
    from keras_s2v.training import tasks, train_lib

    if config.model.kind != "glance":
        return train_lib.build_trainable(config)
    from keras_s2v.models.lip_motion import LipAutoencoder, LipFlowNet
    from keras_s2v.training.tasks.glance import glance_trainer

    width = config.model.width
    return glance_trainer(
        config,
        tasks.get_task("glance").build_model(config),
        LipFlowNet(width=width),
        LipAutoencoder(width=width).encoder,
    )


def steps_per_second(config, batch, steps: int) -> float:
    import keras

    from keras_s2v.training import train_lib

    keras.utils.set_random_seed(0)
    model = trainable(config)
    train_lib.compile_model(model, config)
    for _ in range(2):
        model.train_on_batch(*batch)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(*batch)
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--suffix", default="_tiny", help="experiment suffix: _tiny, or '' for the paper's sizes")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()

    from keras_s2v.configs.experiments import apply_overrides, get_experiment
    from keras_s2v.training import tasks

    print(f"{'kind':<11} {'experiment':<13} {'steps/s':>8} {'XLA':>8} {'ratio':>6}")
    for kind in args.kinds.split(","):
        name = KINDS[kind] + args.suffix
        small = [f"data.batch_size={args.batch}", "data.shuffle_buffer=2", "data.augment=false"]
        config = apply_overrides(get_experiment(name), small + (["model.tgan.noise_std=0.0"] if kind == "tgan" else []))
        batch = next(iter(tasks.get_task(kind).datasets(config, args.data, args.batch)[0]))
        plain = steps_per_second(config, batch, args.steps)
        xla = steps_per_second(apply_overrides(config, ["train.jit_compile=true"]), batch, args.steps)
        print(f"{kind:<11} {name:<13} {plain:8.2f} {xla:8.2f} {xla / plain:6.2f}", flush=True)


if __name__ == "__main__":
    main()
