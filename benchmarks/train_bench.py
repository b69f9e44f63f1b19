"""Evidence of learning for Speech2Vid, and training throughput.

    .venv/bin/python benchmarks/train_bench.py --corpus synth --out /tmp/bench_synth
    .venv/bin/python benchmarks/train_bench.py --corpus real --out /tmp/bench_real   # ../shared/media/clips

Prepares the corpus (the last 20% of every clip held out for validation),
trains an experiment (default ``s2v_small``), then prints validation L1 /
PSNR / SSIM of the model next to two baselines on the same frames: the
identity still copied unchanged, and the model fed shuffled audio. Then
training throughput (samples/s) with 1 and 2 CPU replicas and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MEDIA = Path(os.environ.get("KERAS_S2V_MEDIA", Path(__file__).resolve().parents[1].parent / "shared" / "media"))


def prepare_corpus(kind: str, out: Path) -> Path:
    from keras_s2v.data import prepare, synth

    shards = out / "shards"
    if kind == "synth":
        synth.make_corpus(out / "synth", num_clips=6, seconds=4.0, seed=0, log=None)
        inputs = [str(out / "synth")]
    else:
        inputs = [str(p) for p in sorted((MEDIA / "clips").glob("*.mp4"))]
    config = prepare.PrepareConfig(split="train", holdout_tail=0.2)
    manifest = prepare.prepare(inputs, shards, config, workers=2, progress=False, log=lambda _: None)
    print(prepare.summary_table(manifest).splitlines()[-3:])
    return shards


def evaluate(model, dataset) -> dict:
    """Model vs identity-still vs shuffled-audio on the same validation frames."""
    from skimage.metrics import structural_similarity

    rows = {"model": [], "identity still": [], "shuffled audio": []}
    batches = list(dataset)
    all_mfcc = np.concatenate([np.asarray(x["mfcc"]) for x, _ in batches])
    shuffled = np.random.default_rng(0).permutation(len(all_mfcc))
    offset = 0
    for inputs, target in batches:
        faces, mfcc, target = np.asarray(inputs["faces"]), np.asarray(inputs["mfcc"]), np.asarray(target)
        n = len(target)
        predictions = {
            "model": np.asarray(model({"faces": faces, "mfcc": mfcc}, training=False)),
            "identity still": faces[..., :3],
            "shuffled audio": np.asarray(
                model({"faces": faces, "mfcc": all_mfcc[shuffled[offset : offset + n]]}, training=False)
            ),
        }
        offset += n
        for name, pred in predictions.items():
            for p, t in zip(pred, target):
                mse = float(np.mean((p - t) ** 2))
                half = p.shape[0] // 2  # the lower half of the aligned face holds the mouth
                mse_lower = float(np.mean((p[half:] - t[half:]) ** 2))
                rows[name].append(
                    (
                        float(np.mean(np.abs(p - t))),
                        10 * np.log10(1.0 / max(mse, 1e-10)),
                        structural_similarity(p, t, channel_axis=-1, data_range=1.0),
                        float(np.mean(np.abs(p[half:] - t[half:]))),
                        10 * np.log10(1.0 / max(mse_lower, 1e-10)),
                    )
                )
    return {name: np.mean(values, axis=0).tolist() for name, values in rows.items()}


def throughput(shards: Path, experiment: str, overrides: list, replicas: int, steps: int) -> float:
    """Samples/s of training steps, in a fresh process (the CPU is split before TF starts)."""
    code = f"""
import time, tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * {replicas})
from keras_s2v.configs.experiments import apply_overrides, get_experiment
from keras_s2v.training import train_lib
config = apply_overrides(get_experiment({experiment!r}), {overrides!r})
strategy = tf.distribute.MirroredStrategy([f'/cpu:{{i}}' for i in range({replicas})])
batch = config.data.batch_size * strategy.num_replicas_in_sync
train, _ = train_lib.make_datasets(config, {str(shards)!r}, batch)
# Batches held in memory: this measures training steps, not JPEG decoding or the shuffle buffer.
train = tf.data.Dataset.from_tensor_slices(next(iter(train.unbatch().batch(batch * {steps})))).batch(batch).cache()
with strategy.scope():
    model = train_lib.build_model(config)
    train_lib.compile_model(model, config)
model.fit(train.take(2), epochs=1, verbose=0)  # warm-up: tracing
start = time.perf_counter()
model.fit(train, epochs=1, verbose=0)
print('SAMPLES_PER_S', {steps} * batch / (time.perf_counter() - start))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return float(result.stdout.split("SAMPLES_PER_S")[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=["synth", "real"], default="synth")
    parser.add_argument("--out", required=True)
    parser.add_argument("--experiment", default="s2v_small")
    parser.add_argument("--override", action="append", default=[])
    parser.add_argument("--throughput_steps", type=int, default=8)
    args = parser.parse_args()

    from keras_s2v import workdirs
    from keras_s2v.configs.experiments import apply_overrides, get_experiment
    from keras_s2v.training import train_lib

    out = Path(args.out)
    shards = prepare_corpus(args.corpus, out)
    config = apply_overrides(get_experiment(args.experiment), args.override)
    start = time.perf_counter()
    result = train_lib.train(config, shards, out / "train")
    train_seconds = time.perf_counter() - start
    model = workdirs.load_trained_model(out / "train")
    _, validation = train_lib.make_datasets(config, shards, 16)
    scores = evaluate(model, validation)
    print(
        f"\ncorpus: {args.corpus}; experiment: {config.name}; {len(result['epochs'])} epochs x "
        f"{config.train.steps_per_epoch} steps x batch {config.data.batch_size}; trained in {train_seconds:.0f} s"
    )
    print(f"{'validation':<16} {'L1':>8} {'PSNR dB':>8} {'SSIM':>8} {'L1 lower':>9} {'PSNR lower':>10}")
    for name, (l1, psnr, ssim, l1_lower, psnr_lower) in scores.items():
        print(f"{name:<16} {l1:>8.4f} {psnr:>8.2f} {ssim:>8.4f} {l1_lower:>9.4f} {psnr_lower:>10.2f}")
    rates = {n: throughput(shards, config.name, args.override, n, args.throughput_steps) for n in (1, 2)}
    print(
        f"throughput: 1 replica {rates[1]:.1f} samples/s, 2 CPU replicas {rates[2]:.1f} samples/s "
        f"(ratio {rates[2] / rates[1]:.2f})"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak memory: {peak:.0f} MiB (this process), {children:.0f} MiB (largest child)")
    (out / "bench.json").write_text(json.dumps({"scores": scores, "throughput": rates, "peak_mib": peak}, indent=1))


if __name__ == "__main__":
    main()
