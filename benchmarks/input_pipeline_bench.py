"""Input-pipeline figures: the training samples/s each model kind's tf.data pipeline delivers per CPU core,
and the training FLOPs per sample of the kind's paper-size model: how many input cores one accelerator needs.

    .venv/bin/python benchmarks/input_pipeline_bench.py [--data SHARDS] [--shards 4] [--cores 1,2] [--batches 20]

Shards: the train split of ``--data`` (a prepared folder, e.g. a real corpus) dealt round-robin into
``--shards`` TFRecord files in a temporary folder; without ``--data``, a synthetic corpus made and
prepared there first (``synth.make_corpus`` + ``prepare``, as the tests' ``synth_shards`` fixture).

For each ``--cores`` count, a child process pinned to that many CPUs (``os.sched_setaffinity``; TF's
inter- and intra-op threads and tf.data's private thread pool limited to the same count) takes, for
every kind, the training dataset ``train`` feeds ``fit``: ``Task.datasets`` of the kind's paper
experiment (its batch size, shuffle buffer, augmentation) with ``distribute.sharded``'s options, i.e.
shard files interleaved in parallel, parallel maps, prefetch; several segments drawn at once and the
cache where ``--override data.parallel_segments=4`` and ``--override data.cache=memory`` ask. It
pulls ``--warmup`` batches (the first fills the shuffle buffer), then times ``--batches`` more and
prints samples/s and samples per CPU-second: the user + system time of the process, all its
threads. On a machine shared with other work the wall-clock rate drops, the CPU time per sample
barely moves: read the per-CPU-second column.

Training FLOPs per sample: 3 x the forward FLOPs of the model the kind ships, counted by
``models.flops`` (the backward pass costs about twice the forward one). A sample is one frame
(speech2vid, deblur), one 5-frame window against 2K+1 audio offsets (syncnet), one sequence of
``data.sequence_lengths`` frames (tgan), one clip of ``model.glance.window_frames`` lip frames (glance).
Discriminators, frozen helpers (glance's flow network and perceptual encoder), GRUs, BatchNorm and
activations are not counted: an accelerator does more work per sample than this, so input cores
worked out from it err on the side of too many.

Input cores one accelerator needs = its training samples/s / samples per CPU-second, where its
samples/s ~ its sustained FLOP/s on the model / training FLOPs per sample. The last column is the
sustained accelerator TFLOP/s one input core keeps fed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_name  # benchmarks/machine.py: scripts run with their own folder on the path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as python -m keras_s2v.train

EXPERIMENTS = {"speech2vid": "s2v", "deblur": "deblur", "syncnet": "syncnet", "tgan": "tgan", "glance": "glance"}
TRAINING_PER_FORWARD = 3  # forward + backward (about twice the forward) per sample


# --- Shards -----------------------------------------------------------------------------------


def synthetic_corpus(out: Path) -> Path:
    """A prepared synthetic corpus (2 speakers x 2 clips x 4 s, last quarter held out) in ``out / "prepared"``."""
    from keras_s2v.data import prepare, synth

    synth.make_corpus(out / "corpus", num_clips=2, seconds=4.0, size=192, seed=0, log=None)
    config = prepare.PrepareConfig(split="train", holdout_tail=0.25, min_track_frames=20)
    prepare.prepare([str(out / "corpus")], out / "prepared", config, progress=False, log=lambda _: None)
    return out / "prepared"


# --- One child per core count -----------------------------------------------------------------


def pin(cores: int) -> None:
    """This process (and every thread it starts from now on) on its first ``cores`` CPUs; before TensorFlow loads."""
    cpus = sorted(os.sched_getaffinity(0))
    if cores > len(cpus):
        raise SystemExit(f"--cores {cores}: this process may use {len(cpus)} CPU(s)")
    os.sched_setaffinity(0, cpus[:cores])


def pipeline_rate(kind: str, data_dir, cores: int, warmup: int, batches: int, overrides) -> dict:
    """Samples/s and samples per CPU-second of ``kind``'s training dataset, ``cores`` threads."""
    import tensorflow as tf

    from keras_s2v.configs.experiments import apply_overrides, get_experiment
    from keras_s2v.training import distribute, tasks

    config = apply_overrides(get_experiment(EXPERIMENTS[kind]), overrides)
    batch = config.data.batch_size  # per replica, one replica: the global batch train would read
    dataset = distribute.sharded(tasks.get_task(kind).datasets(config, data_dir, batch)[0])
    options = tf.data.Options()
    options.threading.private_threadpool_size = cores
    iterator = iter(dataset.with_options(options))
    for _ in range(warmup):
        next(iterator)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    samples = batch * batches
    return {
        "kind": kind,
        "cores": cores,
        "batch": batch,
        "samples_per_s": samples / wall,
        "samples_per_cpu_s": samples / cpu,
        "cpu_use": cpu / wall,  # CPUs busy on average (at most ``cores``)
    }


def child(args) -> None:
    cores = int(args.cores)
    pin(cores)
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(cores)
    tf.config.threading.set_intra_op_parallelism_threads(cores)
    for kind in args.kinds.split(","):
        row = pipeline_rate(kind, args.data, cores, args.warmup, args.batches, args.override)
        print(json.dumps(row), flush=True)


def child_rows(args, data_dir, cores: int) -> list[dict]:
    command = [sys.executable, __file__, "--child", "--data", str(data_dir), "--cores", str(cores)]
    command += ["--kinds", args.kinds, "--warmup", str(args.warmup), "--batches", str(args.batches)]
    for override in args.override:
        command += ["--override", override]
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


# --- FLOPs --------------------------------------------------------------------------------------


def training_flops(kind: str) -> tuple[float, str]:
    """(training FLOPs per sample of ``kind``'s paper-size model, what a sample is): ``TRAINING_PER_FORWARD`` x
    the forward FLOPs of one sample through the model the kind ships."""
    from keras_s2v.configs.experiments import get_experiment
    from keras_s2v.data import pipeline
    from keras_s2v.models.flops import count_flops
    from keras_s2v.training.train_lib import build_model

    config = get_experiment(EXPERIMENTS[kind])
    model = build_model(config)

    def total(m):
        return count_flops(m)["total"]

    if kind == "tgan":  # the identity once, the audio encoder and the decoder once per frame (frames folded into B)
        frames = max(pipeline.sequence_lengths(config.data.sequence_lengths))
        forward = total(model.identity_encoder) + frames * (total(model.audio_encoder) + total(model.decoder))
        sample = f"{frames} frames"
    elif kind == "glance":  # the decoder's 2-D layers run on the frames folded into the batch: once per frame
        frames, decoder = model.frames, model.decoder
        layers = count_flops(decoder)["layers"]
        per_frame = sum(f for name, f in layers.items() if len(decoder.get_layer(name).output.shape) == 4)
        forward = total(model) + (frames - 1) * per_frame
        sample = f"{frames} frames"
    elif kind == "syncnet":  # the video encoder once, the audio encoder per offset (TimeDistributed)
        forward = total(model)
        sample = f"5 fr, {2 * config.model.syncnet.max_shift + 1} offs"
    else:
        forward = total(model)
        sample = "1 frame"
    return TRAINING_PER_FORWARD * forward, sample


# --- Main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a prepared folder; default: a synthetic corpus made for the run")
    parser.add_argument("--shards", type=int, default=4, help="train-split shards to deal its examples into")
    parser.add_argument("--cores", default="1,2", help="core counts, one child process each")
    parser.add_argument("--kinds", default=",".join(EXPERIMENTS))
    parser.add_argument("--warmup", type=int, default=3, help="batches before timing (the first fills the shuffle)")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per kind")
    parser.add_argument("--override", action="append", default=[], help="config override for every kind")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for kind in args.kinds.split(","):
        if kind not in EXPERIMENTS:
            parser.error(f"unknown kind {kind!r} ({', '.join(EXPERIMENTS)})")
    if args.child:
        child(args)
        return

    from keras_s2v.data import prepared

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="input_pipeline_bench_") as tmp:
        source = Path(args.data) if args.data else synthetic_corpus(Path(tmp))
        shards = prepared.reshard(source, Path(tmp) / "shards", args.shards)
        print(
            f"{cpu_name()}, {len(os.sched_getaffinity(0))} CPUs, load average {os.getloadavg()[0]:.1f}; "
            f"{'synthetic corpus' if not args.data else source}: {shards['examples']} train segments in "
            f"{args.shards} shards, {shards['bytes'] / 2**20:.0f} MiB; {args.batches} batches timed after "
            f"{args.warmup}; overrides: {' '.join(args.override) or 'none'}",
            flush=True,
        )
        rows = [
            row for cores in map(int, args.cores.split(",")) for row in child_rows(args, Path(tmp) / "shards", cores)
        ]

    flops = {kind: training_flops(kind) for kind in args.kinds.split(",")}
    print(
        f"\n{'kind':<11} {'experiment':<10} {'batch':>5} {'sample':<17} {'train GFLOP':>11} {'cores':>5} "
        f"{'samples/s':>9} {'CPUs busy':>9} {'/CPU-s':>7} {'TFLOP/s fed':>11}"
    )
    for row in rows:
        kind = row["kind"]
        train_flops, sample = flops[kind]
        print(
            f"{kind:<11} {EXPERIMENTS[kind]:<10} {row['batch']:>5} {sample:<17} {train_flops / 1e9:>11.1f} "
            f"{row['cores']:>5} {row['samples_per_s']:>9.1f} {row['cpu_use']:>9.2f} {row['samples_per_cpu_s']:>7.1f} "
            f"{row['samples_per_cpu_s'] * train_flops / 1e12:>11.2f}"
        )
    print(
        f"\ntrain GFLOP: {TRAINING_PER_FORWARD} x forward per sample of the paper-size model (discriminators and "
        "frozen helpers not counted). /CPU-s: samples per CPU-second of the input process. TFLOP/s fed: the "
        "accelerator's sustained training TFLOP/s one input core keeps busy (/CPU-s x train GFLOP). Input cores "
        "per accelerator = its samples/s / (/CPU-s)."
    )
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
