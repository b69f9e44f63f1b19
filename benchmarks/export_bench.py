"""Inference speed of every exported format at batch 1, against this CPU's peak FLOP/s.

    .venv/bin/python benchmarks/export_bench.py [--experiments s2v,s2v_mobile] [--data SHARDS]
        [--seconds 5] [--json OUT]

For each experiment it builds the model (untrained weights: speed does not
depend on their values), writes the SavedModel into a temporary folder,
converts TFLite float32 / float16 / int8 (int8 calibrated on 16 examples:
real ones from ``--data`` shards, else synthetic: random uint8 faces and
speech-like PCM, band-limited noise bursts at -20 dBFS) and ONNX
(``identity_features`` and ``generate_frame_pcm``), then measures frames per
second at batch 1 for

* ``identity_features`` (once per face in an app),
* ``generate_frame_pcm``: the per-window generator, raw PCM in (what runs per video frame),
* ``generate_frame``: the same with MFCC in,
* the full model per frame: ``serving_default`` (SavedModel), the model called
  on faces + MFCC (Keras), ``identity_features`` then ``generate_frame_pcm``
  (TFLite, ONNX),

for Keras (model parts called eagerly, ``training=False``), the SavedModel
(signature calls), each TFLite variant (LiteRT, ``--threads`` threads) and
ONNX (onnxruntime, ``--threads`` intra-op threads; once through
``export.formats.OnnxRunner`` as is, once with idle threads sleeping instead of
spinning, ``onnx_nospin``). Each figure is the median
of ``--repetitions`` timed runs after a warm-up, within ``--seconds`` per
measurement (the default run takes about 6-7 minutes on 2 cores).

With the FLOPs per frame of ``keras_s2v.models.flops.generator_flops`` each
rate becomes a fraction of the CPU's peak FP32 FLOP/s (cores x clock x
FLOPs/cycle/core from /proc/cpuinfo; ``--cores`` / ``--ghz`` override). It also
prints the speed-up of precomputing the identity features (generator alone vs
the full model per frame), the files' sizes, which of the generator's
convolutions LiteRT hands to XNNPACK, and the per-frame targets: int8 ``s2v``
generator 25 frames/s (real time), int8 ``s2v_mobile`` generator 250 frames/s
(10x real time). Where a target is missed it profiles the generator's largest
layers (by FLOPs), each converted and timed alone, to show what limits it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

log = functools.partial(print, flush=True)

# frames/s targets of the int8 per-window generator (generate_frame_pcm), per experiment.
TARGETS = {
    "s2v": (25.0, "real time", "per-window generator"),
    "s2v_mobile": (250.0, "10x real time", "generator"),
    "s2v_mobile_real": (250.0, "10x real time", "generator"),
}
COLUMNS = ("identity_features", "generate_frame_pcm", "generate_frame", "full")
FLOP_PART = {
    "identity_features": "identity_encoder",
    "generate_frame_pcm": "frame_generator",
    "generate_frame": "frame_generator",
    "full": "full_model",
}
QUANTIZATIONS = ("float32", "float16", "int8")
ONNX_SIGNATURES = ("identity_features", "generate_frame_pcm")
COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL")
# The in-graph MFCC of generate_frame_pcm (two 400 x 257 DFT matmuls over 35 frames, mel, DCT):
# not counted by generator_flops.
MFCC_GFLOP = 2 * 35 * (2 * 400 * 257 + 257 * 40 + 40 * 12) / 1e9


# --- The machine ----------------------------------------------------------------------------


def cpu_peak(cores: int | None = None, ghz: float | None = None) -> dict:
    """Peak FP32 FLOP/s = cores x clock x FLOPs/cycle/core, with the assumptions spelled out.

    FLOPs/cycle/core from the ISA flags: 64 with AVX-512 (2 x 16-lane FMA), 32
    with AVX2 + FMA (2 x 8-lane FMA units), 16 with AVX, 8 otherwise. The clock
    is /proc/cpuinfo's "cpu MHz" (a VM may report the base clock; boost is
    not known).
    """
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    if "avx512f" in flags:
        isa, per_cycle = "AVX-512 (2 x 16-lane FP32 FMA units assumed)", 64
    elif {"avx2", "fma"} <= flags:
        isa, per_cycle = "AVX2 + FMA (2 x 8-lane FP32 FMA units assumed)", 32
    elif "avx" in flags:
        isa, per_cycle = "AVX (8-lane add + 8-lane multiply)", 16
    else:
        isa, per_cycle = "SSE (4-lane add + 4-lane multiply)", 8
    cores = cores or os.cpu_count() or 1
    clock_source = "--ghz" if ghz else "/proc/cpuinfo cpu MHz"
    ghz = ghz or float(fields.get("cpu MHz", 0) or 0) / 1000 or 2.0
    vnni = bool(flags & {"avx512_vnni", "avx_vnni", "avx512vnni"})
    return {
        "cpu": fields.get("model name") or platform.processor() or "unknown CPU",
        "cores": cores,
        "ghz": ghz,
        "clock_source": clock_source,
        "isa": isa,
        "flops_per_cycle": per_cycle,
        "vnni": vnni,
        "peak_gflops": cores * ghz * per_cycle,
    }


# --- Inputs ---------------------------------------------------------------------------------


def speech_like_pcm(seconds: float, rng) -> np.ndarray:
    """Band-limited (300-3400 Hz) noise in syllable-like bursts, RMS -20 dBFS while voiced.

    Bursts of 80-250 ms with Hann envelopes, separated by 30-150 ms pauses:
    the MFCC then moves like speech's, which pure noise or silence would not.
    """
    from keras_s2v.data import audio as audio_lib

    n = int(seconds * audio_lib.SAMPLE_RATE)
    spectrum = np.fft.rfft(rng.normal(size=n))
    freqs = np.fft.rfftfreq(n, 1 / audio_lib.SAMPLE_RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    band = np.fft.irfft(spectrum, n)
    envelope = np.zeros(n)
    position = int(rng.integers(0, 1600))
    while position < n:
        length = int(rng.uniform(0.08, 0.25) * audio_lib.SAMPLE_RATE)
        burst = np.hanning(length)[: n - position]
        envelope[position : position + len(burst)] = burst * rng.uniform(0.5, 1.0)
        position += length + int(rng.uniform(0.03, 0.15) * audio_lib.SAMPLE_RATE)
    voiced = band * envelope
    rms = np.sqrt(np.mean(voiced[envelope > 0.1] ** 2))
    return (voiced * 10 ** (-20 / 20) / rms).astype(np.float32)


def synthetic_samples(count: int, num_images: int, seed: int = 0, masked_target: bool = False) -> dict[str, np.ndarray]:
    """``count`` inputs shaped like ``export.exporter.read_samples``: random faces, speech-like PCM windows, and
    for a masked-target model each frame's own face (``target``)."""
    from keras_s2v.data import audio as audio_lib

    rng = np.random.default_rng(seed)
    waveform = speech_like_pcm(count * 0.2 + 1.0, rng)
    # Frames whose whole window lies inside the clip (frame 0's window is half zero padding).
    frames = np.linspace(5, audio_lib.num_frames(len(waveform)) - 6, count).round().astype(int)
    pcm = np.stack([audio_lib.pcm_window(waveform, int(t)) for t in frames]).astype(np.float32)
    samples = {
        "faces": rng.integers(0, 256, (count, 112, 112, 3 * num_images), dtype=np.uint8),
        "mfcc": np.stack([audio_lib.mfcc_from_pcm_window(p) for p in pcm]).astype(np.float32),
        "pcm": pcm,
    }
    if masked_target:
        samples["target"] = rng.integers(0, 256, (count, 112, 112, 3), dtype=np.uint8)
    return samples


# --- Timing ---------------------------------------------------------------------------------


def frames_per_second(call, seconds: float, repetitions: int) -> dict:
    """Median frames/s of ``call`` (one frame per call) over ``repetitions`` timed runs.

    Two warm-up calls first (allocation, XNNPACK weight packing, first-call
    tracing); the second one's time sizes the runs so that all of them
    together take about ``seconds``. ``cores`` is this process's CPU time over
    the wall time of the timed runs: how many cores the runtime kept busy.
    """
    call()
    start = time.perf_counter()
    call()
    once = time.perf_counter() - start
    calls = max(1, round(seconds / repetitions / max(once, 1e-6)))
    rates, cpu_start, wall_start = [], _own_cpu_seconds(), time.perf_counter()
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        rates.append(calls / (time.perf_counter() - start))
    cores = (_own_cpu_seconds() - cpu_start) / (time.perf_counter() - wall_start)
    return {
        "fps": statistics.median(rates),
        "min_fps": min(rates),
        "max_fps": max(rates),
        "calls_per_repetition": calls,
        "repetitions": repetitions,
        "cores": cores,
    }


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class CpuUse:
    """CPU used over an interval by this process and by everything else (other processes, hypervisor steal).

    From /proc/stat's machine-wide busy time minus this process's own CPU
    time: a figure taken while something else ran is slower than the runtime is.
    """

    def __init__(self):
        self.start = self._snapshot()

    @staticmethod
    def _snapshot() -> tuple[float, float | None, float]:
        try:
            values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
            busy = (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
        except (OSError, ValueError, IndexError):
            busy = None
        return time.perf_counter(), busy, _own_cpu_seconds()

    def figures(self) -> dict:
        """{"wall_s", "own_cores", "other_cores" (None where /proc/stat is unreadable), "other_fraction"}."""
        (wall0, busy0, own0), (wall1, busy1, own1) = self.start, self._snapshot()
        wall = wall1 - wall0
        others = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0) - (own1 - own0)) / wall
        return {
            "wall_s": wall,
            "own_cores": (own1 - own0) / wall,
            "other_cores": others,
            "other_fraction": None if others is None else others / (os.cpu_count() or 1),
        }


# --- Exports --------------------------------------------------------------------------------


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def export_all(signatures, samples: dict, folder: Path) -> dict:
    """SavedModel, the three TFLite variants and two ONNX files of one model; paths, sizes, seconds taken."""
    from export import exporter, formats
    from export.signatures import write_saved_model

    paths, seconds = {}, {}
    start = time.perf_counter()
    paths["saved_model"] = folder / "saved_model"
    write_saved_model(signatures, paths["saved_model"])
    seconds["saved_model"] = time.perf_counter() - start
    start = time.perf_counter()
    for quantization, model_bytes in exporter.tflite_models(signatures, folder, QUANTIZATIONS, samples):
        paths[f"tflite_{quantization}"] = folder / f"{quantization}.tflite"
        paths[f"tflite_{quantization}"].write_bytes(model_bytes)
        seconds[f"tflite_{quantization}"] = time.perf_counter() - start
        start = time.perf_counter()
    start = time.perf_counter()
    for name in ONNX_SIGNATURES:
        paths[f"onnx_{name}"] = folder / f"{name}.onnx"
        formats.to_onnx(paths["saved_model"], name, paths[f"onnx_{name}"])
    seconds["onnx"] = time.perf_counter() - start
    sizes = {
        "saved_model_variables": folder_bytes(paths["saved_model"] / "variables"),
        "saved_model_pb": (paths["saved_model"] / "saved_model.pb").stat().st_size,
    }
    sizes.update({k: p.stat().st_size for k, p in paths.items() if k != "saved_model"})
    return {"paths": paths, "sizes": sizes, "seconds": seconds}


# --- What each format runs per measurement --------------------------------------------------


def keras_calls(model, one: dict, identity: dict) -> dict:
    """The Keras parts called directly (eager, ``training=False``), one frame per call."""
    import tensorflow as tf

    from keras_s2v.data import audio as audio_lib

    generator = model.frame_generator()
    # A masked-target model's faces input is the target then the identity faces, on channels.
    faces = np.concatenate([one["target"], one["faces"]], -1) if "target" in one else one["faces"]
    faces = tf.constant(faces.astype(np.float32) / 255.0)
    identity = {k: tf.constant(v) for k, v in identity.items()}
    one = {k: tf.constant(v) for k, v in one.items()}

    def frame_pcm():
        return np.asarray(generator({**identity, "mfcc": audio_lib.mfcc_tf(one["pcm"])}, training=False))

    return {
        "identity_features": lambda: {
            k: np.asarray(v) for k, v in model.identity_encoder(faces, training=False).items()
        },
        "generate_frame_pcm": frame_pcm,
        "generate_frame": lambda: np.asarray(generator({**identity, "mfcc": one["mfcc"]}, training=False)),
        "full": lambda: np.asarray(model({"faces": faces, "mfcc": audio_lib.mfcc_tf(one["pcm"])}, training=False)),
    }


def runner_calls(runner, one: dict, identity: dict, signatures: tuple) -> dict:
    """``runner.run`` per signature; "full" is ``serving_default`` where the format has it, else
    ``identity_features`` then ``generate_frame_pcm`` (what an app without precomputing would do)."""
    faces = {k: one[k] for k in ("target", "faces") if k in one}  # a masked-target model's take ``target`` too
    feeds = {
        "identity_features": faces,
        "generate_frame_pcm": {**identity, "pcm": one["pcm"]},
        "generate_frame": {**identity, "mfcc": one["mfcc"]},
        "serving_default": {**faces, "pcm": one["pcm"]},
    }
    calls = {name: functools.partial(runner.run, name, feeds[name]) for name in signatures if name in COLUMNS}
    if "serving_default" in signatures:
        calls["full"] = functools.partial(runner.run, "serving_default", feeds["serving_default"])
    else:

        def full():
            features = runner.run("identity_features", feeds["identity_features"])
            return runner.run("generate_frame_pcm", {**features, "pcm": one["pcm"]})

        calls["full"] = full
    return calls


class SleepingOnnxRunner:
    """``export.formats.OnnxRunner`` with ``session.intra_op.allow_spinning=0``.

    Each onnxruntime session has its own intra-op thread pool, whose threads
    spin-wait after a run by default; running two sessions in turn (identity
    then generator) the idle pool's spinning competes with the working one.
    """

    name = "onnx_nospin"

    def __init__(self, paths: dict, num_threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions = {
            k: onnxruntime.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
            for k, p in paths.items()
        }

    def run(self, signature: str, inputs: dict) -> dict[str, np.ndarray]:
        from export import formats

        return formats.OnnxRunner.run(self, signature, inputs)


def xnnpack_coverage(interpreter) -> dict | None:
    """{op: [delegated, total]} for the compute ops of the interpreter's first subgraph, after it ran.

    An op counts as delegated when its weights (or the float16 constant a
    DEQUANTIZE turns into them) are an input of a DELEGATE node. Uses LiteRT's
    experimental ``_get_ops_details``; None when that is not available.
    """
    try:
        ops = interpreter._get_ops_details()
    except Exception:  # noqa: BLE001 - a private API that may change
        return None
    producer = {int(t): o for o in ops if o["op_name"] != "DELEGATE" for t in o["outputs"]}
    delegated_inputs = {int(t) for o in ops if o["op_name"] == "DELEGATE" for t in o["inputs"]}
    coverage: dict[str, list[int]] = {}
    for op in ops:
        if op["op_name"] not in COMPUTE_OPS or len(op["inputs"]) < 2:
            continue
        weights = int(op["inputs"][1])
        while weights not in delegated_inputs and producer.get(weights, {}).get("op_name") == "DEQUANTIZE":
            weights = int(producer[weights]["inputs"][0])
        counts = coverage.setdefault(op["op_name"], [0, 0])
        counts[0] += weights in delegated_inputs
        counts[1] += 1
    return coverage


def first_subgraph_signature(interpreter) -> str | None:
    """The signature whose subgraph ``_get_ops_details`` describes (subgraph 0)."""
    try:
        return next(
            name
            for name in interpreter.get_signature_list()
            if interpreter._interpreter.GetSubgraphIndexFromSignature(name) == 0
        )
    except Exception:  # noqa: BLE001 - private API
        return None


def coverage_text(coverage: dict | None) -> str:
    if coverage is None:
        return "unknown"
    return ", ".join(f"{op} {done}/{total}" for op, (done, total) in coverage.items())


# --- One experiment -------------------------------------------------------------------------


def bench_experiment(name: str, args, peak: dict, folder: Path) -> dict:
    """Build, export and time one experiment; every figure in a dict (see ``print_experiment``)."""
    import keras

    from export import exporter, formats
    from export.signatures import Signatures
    from keras_s2v.configs.experiments import get_experiment
    from keras_s2v.models import flops
    from keras_s2v.signature_names import ON_DEVICE_SIGNATURES, SIGNATURES
    from keras_s2v.training import train_lib

    keras.utils.set_random_seed(0)
    config = get_experiment(name)
    model = train_lib.build_model(config)
    signatures = Signatures(model)
    num_images, masked = model.num_identity_images, signatures.masked_target
    if args.data:
        samples = exporter.read_samples(
            args.data, args.split, num_images, args.calibration_samples, masked_target=masked
        )
        inputs = f"real examples from {args.data} ({args.split} split)"
    else:
        samples = synthetic_samples(args.calibration_samples, num_images, masked_target=masked)
        inputs = "synthetic (random uint8 faces; speech-like PCM: 300-3400 Hz noise bursts at -20 dBFS)"
    gflop = {k: v / 1e9 for k, v in flops.generator_flops(model).items()}
    log(
        f"[{name}] exporting SavedModel, TFLite float32/float16/int8 "
        f"(int8 calibrated on {len(samples['faces'])} examples), ONNX ..."
    )
    exported = export_all(signatures, samples, folder)
    log(f"[{name}] exported in " + ", ".join(f"{k} {v:.0f} s" for k, v in exported["seconds"].items()))

    one = {k: v[:1] for k, v in samples.items()}
    identity = signatures.run_keras("identity_features", one)
    paths = exported["paths"]
    runners = {"keras": keras_calls(model, one, identity)}
    saved_model = formats.SavedModelRunner(paths["saved_model"])
    runners["saved_model"] = runner_calls(saved_model, one, identity, SIGNATURES)
    lite = {}
    for quantization in QUANTIZATIONS:
        lite[quantization] = formats.LiteRunner(
            paths[f"tflite_{quantization}"], num_threads=args.threads, name=f"tflite_{quantization}"
        )
        runners[f"tflite_{quantization}"] = runner_calls(lite[quantization], one, identity, ON_DEVICE_SIGNATURES)
    onnx_paths = {s: paths[f"onnx_{s}"] for s in ONNX_SIGNATURES}
    runners["onnx"] = runner_calls(
        formats.OnnxRunner(onnx_paths, num_threads=args.threads), one, identity, ONNX_SIGNATURES
    )
    runners["onnx_nospin"] = runner_calls(SleepingOnnxRunner(onnx_paths, args.threads), one, identity, ONNX_SIGNATURES)

    results: dict[str, dict] = {}
    cpu_use = CpuUse()
    for runner_name, calls in runners.items():
        log(f"[{name}] timing {runner_name} ({', '.join(calls)}) ...")
        results[runner_name] = {}
        for column in COLUMNS:
            if column not in calls:
                continue
            figures = frames_per_second(calls[column], args.seconds, args.repetitions)
            figures["gflop_per_frame"] = gflop[FLOP_PART[column]]
            figures["gflops"] = figures["fps"] * figures["gflop_per_frame"]
            figures["peak_fraction"] = figures["gflops"] / peak["peak_gflops"]
            results[runner_name][column] = figures
    cpu_use = cpu_use.figures()

    coverage = {}
    for quantization, runner in lite.items():
        coverage[quantization] = {
            "signature": first_subgraph_signature(runner.interpreter),
            "ops": xnnpack_coverage(runner.interpreter),
        }
    speedups = {
        r: v["generate_frame_pcm"]["fps"] / v["full"]["fps"]
        for r, v in results.items()
        if "generate_frame_pcm" in v and "full" in v
    }
    report = {
        "experiment": name,
        "weights": "untrained (random initialisation, seed 0)",
        "inputs": inputs,
        "parameters": int(model.count_params()),
        "gflop_per_frame": gflop,
        "results": results,
        "precompute_speedup": speedups,
        "sizes_bytes": exported["sizes"],
        "export_seconds": exported["seconds"],
        "xnnpack": coverage,
        "cpu_while_timing": cpu_use,
    }
    target = TARGETS.get(name)
    if (
        target
        and args.profile_layers
        and (args.always_profile or results["tflite_int8"]["generate_frame_pcm"]["fps"] < target[0])
    ):
        log(f"[{name}] profiling the generator's {args.profile_layers} largest layers, each alone ...")
        report["layer_profile"] = profile_layers(model, args.profile_layers, args, folder / "layers")
    return report


# --- Per-layer profile ----------------------------------------------------------------------


def _nested_layer(model, path: str):
    """``audio_encoder/conv4`` -> that layer inside the nested model (``count_flops`` names)."""
    layer = model
    for part in path.split("/"):
        layer = layer.get_layer(part)
    return layer


def one_layer_saved_model(layer, shape: tuple, batch: int | None, folder: Path) -> Path:
    """``layer`` alone (its weights, inputs ``(batch, *shape)``) as a SavedModel, like the real export.

    Through ``ExportArchive`` as ``write_saved_model`` does, so a free batch
    dimension gives a transposed convolution the same run-time
    ``output_shape`` as in the exported generator.
    """
    import keras
    import tensorflow as tf

    inputs = keras.Input(shape, batch_size=batch)
    single = keras.Model(inputs, layer(inputs))
    archive = keras.export.ExportArchive()
    archive.track(single)
    archive.add_endpoint(
        "serve", lambda x: single(x, training=False), [tf.TensorSpec((batch, *shape), tf.float32, name="x")]
    )
    path = folder / f"{layer.name}_batch_{batch or 'free'}"
    archive.write_out(str(path), verbose=False)
    return path


def one_layer_tflite(saved_model: Path, shape: tuple, quantization: str) -> bytes:
    """A one-layer SavedModel as a float32 or int8 .tflite; int8 calibrated on non-negative
    normal inputs (the layers' inputs follow ReLUs), with int8 inputs and outputs: no
    QUANTIZE / DEQUANTIZE around the op, as for a layer inside the int8 model."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantization == "int8":
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [np.abs(rng.normal(size=(1, *shape))).astype(np.float32)] for _ in range(8)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def time_one_layer(model_bytes: bytes, shape: tuple, args) -> dict:
    """{"ms" per call at batch 1, "cores" kept busy, "xnnpack": whether XNNPACK took the op} with LiteRT."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes, num_threads=args.threads)
    runner = interpreter.get_signature_runner()
    key, details = next(iter(runner.get_input_details().items()))
    rng = np.random.default_rng(1)
    if details["dtype"] == np.int8:
        x = rng.integers(-128, 128, (1, *shape), dtype=np.int8)
    else:
        x = np.abs(rng.normal(size=(1, *shape))).astype(np.float32)
    figures = frames_per_second(lambda: runner(**{key: x}), args.seconds / 4, 3)
    coverage = xnnpack_coverage(interpreter)
    delegated = None if coverage is None else all(done == total for done, total in coverage.values())
    return {"ms": 1000 / figures["fps"], "cores": figures["cores"], "xnnpack": delegated}


def profile_layers(model, top: int, args, folder: Path) -> list[dict]:
    """The frame generator's ``top`` largest layers by FLOPs, each converted and timed alone.

    Per layer: float32 and int8 ms with a free batch dimension (as exported),
    the cores kept busy, whether XNNPACK took it, and for int8 layers XNNPACK
    did not take, the int8 ms with a fixed batch of 1. Times include one
    LiteRT call from Python (about 10 us).
    """
    from keras_s2v.models import flops

    folder.mkdir(parents=True, exist_ok=True)
    generator = model.frame_generator()
    counted = flops.count_flops(generator)["layers"]
    rows = []
    for path, layer_flops in sorted(counted.items(), key=lambda kv: -kv[1])[:top]:
        layer = _nested_layer(generator, path)
        shape = tuple(layer.input.shape[1:])
        row = {
            "layer": path,
            "kind": type(layer).__name__,
            "gflop": layer_flops / 1e9,
            "share_of_generator_flops": layer_flops / sum(counted.values()),
        }
        free_batch = one_layer_saved_model(layer, shape, None, folder)
        for quantization in ("float32", "int8"):
            timed = time_one_layer(one_layer_tflite(free_batch, shape, quantization), shape, args)
            row.update({f"{quantization}_{k}": v for k, v in timed.items()})
        if row["int8_xnnpack"] is False:
            timed = time_one_layer(
                one_layer_tflite(one_layer_saved_model(layer, shape, 1, folder), shape, "int8"), shape, args
            )
            row.update({f"int8_batch1_{k}": v for k, v in timed.items()})
        rows.append(row)
    return rows


# --- Printing -------------------------------------------------------------------------------


def mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


def print_experiment(report: dict, peak: dict) -> None:
    """One table: frames/s and % of the FP32 peak per format and signature; sizes, XNNPACK, speed-ups."""
    g = report["gflop_per_frame"]
    print(
        f"\n=== {report['experiment']}: {report['parameters'] / 1e6:.1f} M parameters, {report['weights']}; "
        f"speed does not depend on the weights' values ==="
    )
    print(f"inputs (int8 calibration and timed frame): {report['inputs']}")
    print(
        f"GFLOP per frame: identity encoder {g['identity_encoder']:.3f}, frame generator {g['frame_generator']:.3f} "
        f"(generate_frame_pcm adds ~{MFCC_GFLOP:.3f} for its in-graph MFCC, not counted), "
        f"full model {g['full_model']:.3f}"
    )
    print(
        f"frames/s at batch 1 (median of timed runs) and % of the FP32 peak ({peak['peak_gflops']:.0f} GFLOP/s); "
        "full = whole model per frame; speed-up = generate_frame_pcm over full"
    )
    header = f"{'format':<16}" + "".join(f"{c:>21}" for c in COLUMNS) + f"{'speed-up':>10}"
    print(header)
    print("-" * len(header))
    for runner, columns in report["results"].items():
        cells = []
        for column in COLUMNS:
            figures = columns.get(column)
            cells.append(
                f"{figures['fps']:>13.1f} {100 * figures['peak_fraction']:>5.1f}%" if figures else f"{'-':>20}"
            )
        speedup = report["precompute_speedup"].get(runner)
        label = runner + (" *" if runner == "tflite_int8" else "")
        print(f"{label:<16}" + "".join(f"{c:>21}" for c in cells) + (f"{speedup:>9.2f}x" if speedup else ""))
    vnni = "has" if peak["vnni"] else "has no"
    print(
        "* int8: % of the FP32 peak, i.e. FP32-equivalent; the int8 peak is higher (about 2x FP32 with AVX2 "
        f"VPMADDUBSW, 4x with VNNI VPDPBUSD; this CPU {vnni} VNNI)"
    )
    print(
        "full per frame: Keras model(faces, MFCC of the PCM); SavedModel serving_default; "
        "TFLite / ONNX identity_features then generate_frame_pcm. ONNX has no generate_frame file."
    )
    print(
        "onnx: export.formats.OnnxRunner as is; onnx_nospin: the same files, sessions with "
        "session.intra_op.allow_spinning=0 (idle thread pools sleep instead of spinning)"
    )
    highest = max(f["peak_fraction"] for columns in report["results"].values() for f in columns.values())
    if highest > 0.8:
        print(
            f"(up to {100 * highest:.0f}% of the assumed peak: the clock under load is likely above the "
            f"{peak['ghz']:.2f} GHz of /proc/cpuinfo, so the real peak is higher; --ghz sets it)"
        )
    s = report["sizes_bytes"]
    print(
        f"sizes: SavedModel variables {mb(s['saved_model_variables'])} (+ saved_model.pb {mb(s['saved_model_pb'])}); "
        + ", ".join(f"TFLite {q} {mb(s['tflite_' + q])}" for q in QUANTIZATIONS)
        + "; "
        + ", ".join(f"ONNX {n} {mb(s['onnx_' + n])}" for n in ONNX_SIGNATURES)
    )
    for quantization, coverage in report["xnnpack"].items():
        print(
            f"XNNPACK took, in TFLite {quantization} {coverage['signature'] or '(first subgraph)'}: "
            f"{coverage_text(coverage['ops'])}"
        )
    cpu = report["cpu_while_timing"]
    if cpu["other_cores"] is not None:
        warning = "  (figures may be low: the machine was shared)" if cpu["other_fraction"] > 0.1 else ""
        print(
            f"while timing ({cpu['wall_s']:.0f} s): this process kept {cpu['own_cores']:.2f} cores busy, "
            f"other processes and hypervisor steal {cpu['other_cores']:.2f} "
            f"({100 * cpu['other_fraction']:.0f}% of the machine){warning}"
        )
    speedups = report["precompute_speedup"]
    print(
        f"precomputing the identity features (generate_frame_pcm alone vs the full model per frame): SavedModel "
        f"{speedups['saved_model']:.2f}x, TFLite int8 {speedups['tflite_int8']:.2f}x faster per frame"
    )
    print("export took " + ", ".join(f"{k} {v:.0f} s" for k, v in report["export_seconds"].items()))


def print_limits(report: dict, peak: dict) -> None:
    """Why the int8 generator misses its target: FLOP/s against the peak and the per-layer profile."""
    target, _, _ = TARGETS[report["experiment"]]
    figures = report["results"]["tflite_int8"]["generate_frame_pcm"]
    gflop = report["gflop_per_frame"]["frame_generator"]
    frame_ms = 1000 / figures["fps"]
    print(
        f"  what limits it: {gflop:.3f} GFLOP x {figures['fps']:.1f} frames/s = {figures['gflops']:.1f} GFLOP/s, "
        f"{100 * figures['peak_fraction']:.0f}% of the FP32 peak (FP32-equivalent); {target:g} frames/s needs "
        f"{gflop * target:.1f} GFLOP/s ({100 * gflop * target / peak['peak_gflops']:.0f}%); at 100% of the FP32 "
        f"peak it would run at {peak['peak_gflops'] / gflop:.0f} frames/s"
    )
    coverage = report["xnnpack"]["int8"]
    print(
        f"  XNNPACK took, in the int8 {coverage['signature']} subgraph: {coverage_text(coverage['ops'])}; "
        "the rest run on LiteRT's builtin kernels"
    )
    rows = report.get("layer_profile")
    if not rows:
        return
    print(
        f"  the generator's largest layers, each converted and timed alone (LiteRT, {peak.get('threads', 2)} threads, "
        "batch 1, free batch dimension as exported; int8 layers with int8 inputs and outputs; "
        "cores = CPU time / wall time):"
    )
    print(f"  {'':<44}|{'float32':^22}|{'int8':^38}|{'int8, batch fixed 1':^20}")
    print(
        f"  {'layer':<22}{'kind':<16}{'GFLOP':>6}"
        f"|{'ms':>7}{'cores':>6}{'XNNPACK':>9}|{'ms':>7}{'cores':>6}{'XNNPACK':>9}"
        f"{'GFLOP/s':>8}{'frame':>8}|{'ms':>7}{'XNNPACK':>9}{'':>4}"
    )
    for row in rows:
        fixed = (
            f"{row['int8_batch1_ms']:>7.3f}{_yes_no(row['int8_batch1_xnnpack']):>9}" if "int8_batch1_ms" in row else ""
        )
        print(
            f"  {row['layer']:<22}{row['kind']:<16}{row['gflop']:>6.3f}"
            f"|{row['float32_ms']:>7.3f}{row['float32_cores']:>6.1f}{_yes_no(row['float32_xnnpack']):>9}"
            f"|{row['int8_ms']:>7.3f}{row['int8_cores']:>6.1f}{_yes_no(row['int8_xnnpack']):>9}"
            f"{row['gflop'] / row['int8_ms'] * 1000:>8.1f}{100 * row['int8_ms'] / frame_ms:>7.0f}%|{fixed}"
        )
    total = sum(r["int8_ms"] for r in rows)
    outside = [r for r in rows if r["int8_xnnpack"] is False]
    print(
        f"  these {len(rows)} layers: {total:.2f} ms of the {frame_ms:.2f} ms int8 frame "
        f"({100 * sum(r['share_of_generator_flops'] for r in rows):.0f}% of its FLOPs)"
    )
    if outside:
        ms = sum(r["int8_ms"] for r in outside)
        fixed = sum(r.get("int8_batch1_ms", r["int8_ms"]) for r in outside)
        kinds = sorted({r["kind"] for r in outside})
        float_ms = sum(r["float32_ms"] for r in outside)
        print(
            f"  not taken by XNNPACK: {', '.join(r['layer'] for r in outside)} ({'/'.join(kinds)}): {ms:.2f} ms "
            f"({100 * ms / frame_ms:.0f}% of the frame) "
            f"for {100 * sum(r['share_of_generator_flops'] for r in outside):.0f}% "
            f"of the FLOPs, {ms / float_ms:.1f}x their float32 time ({float_ms:.2f} ms, also outside XNNPACK)"
        )
        if any("int8_batch1_ms" in r for r in outside):
            best = sum(min(r["int8_ms"], r.get("int8_batch1_ms", r["int8_ms"])) for r in outside)
            estimate = frame_ms - ms + best
            print(
                f"  with a fixed batch of 1 (a constant output_shape) XNNPACK takes them: {fixed:.2f} ms alone; "
                f"{best:.2f} ms taking the faster form of each layer, which would make the frame about "
                f"{estimate:.2f} ms, {1000 / estimate:.0f} frames/s (an estimate from layers timed alone)"
            )


def _yes_no(value) -> str:
    return "?" if value is None else ("yes" if value else "no")


def print_targets(reports: list[dict]) -> None:
    """The summary line per target."""
    print()
    for report in reports:
        if report["experiment"] not in TARGETS:
            continue
        target, meaning, what = TARGETS[report["experiment"]]
        fps = report["results"]["tflite_int8"]["generate_frame_pcm"]["fps"]
        verdict = "reached" if fps >= target else f"NOT reached: {100 * fps / target:.1f}% of the target"
        print(f"int8 {report['experiment']} {what}: {fps:.1f} frames/s (target {target:g}, {meaning}): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", default="s2v,s2v_mobile", help="comma-separated experiment names")
    parser.add_argument(
        "--data", default=None, help="prepared shards: real calibration / timing inputs (default synthetic)"
    )
    parser.add_argument("--split", default="train", help="shard split read with --data")
    parser.add_argument("--calibration_samples", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per measurement (after warm-up)")
    parser.add_argument("--repetitions", type=int, default=5, help="timed runs per measurement; the median is reported")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads and onnxruntime intra-op threads")
    parser.add_argument("--cores", type=int, default=None, help="cores in the peak FLOP/s (default os.cpu_count())")
    parser.add_argument(
        "--ghz", type=float, default=None, help="clock in the peak FLOP/s (default /proc/cpuinfo cpu MHz)"
    )
    parser.add_argument(
        "--profile_layers", type=int, default=6, help="largest generator layers profiled when a target is missed"
    )
    parser.add_argument("--always_profile", action="store_true", help="profile layers even when the target is met")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    args = parser.parse_args()

    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)  # the converters log every graph pass at INFO
    peak = cpu_peak(args.cores, args.ghz)
    peak["threads"] = args.threads
    start = time.perf_counter()
    reports = []
    with tempfile.TemporaryDirectory(prefix="export_bench_") as tmp:
        for name in [n.strip() for n in args.experiments.split(",") if n.strip()]:
            folder = Path(tmp) / name
            folder.mkdir()
            reports.append(bench_experiment(name, args, peak, folder))

    print(
        f"\nmachine: {peak['cpu']}, {peak['cores']} cores x {peak['ghz']:.2f} GHz ({peak['clock_source']}) x "
        f"{peak['flops_per_cycle']} FP32 FLOPs/cycle/core [{peak['isa']}] = peak {peak['peak_gflops']:.0f} GFLOP/s "
        "FP32 (an assumption: the real clock under load and the FMA units are not measured)"
    )
    print(
        f"runtimes: Keras {_version('keras')} / TF {_version('tensorflow')} (TF's own thread pools), LiteRT "
        f"{_version('ai-edge-litert')} ({args.threads} threads, default XNNPACK delegate), onnxruntime "
        f"{_version('onnxruntime')} ({args.threads} intra-op threads); batch 1; each figure the median of "
        f"{args.repetitions} timed runs in ~{args.seconds:g} s after 2 warm-up calls"
    )
    for report in reports:
        print_experiment(report, peak)
        if report["experiment"] in TARGETS:
            target = TARGETS[report["experiment"]][0]
            if report["results"]["tflite_int8"]["generate_frame_pcm"]["fps"] < target or report.get("layer_profile"):
                print(f"int8 {report['experiment']} generator against its target of {target:g} frames/s:")
                print_limits(report, peak)
    print_targets(reports)
    print(f"(whole run: {time.perf_counter() - start:.0f} s)")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": peak, "args": vars(args), "experiments": reports}, indent=1, default=str) + "\n"
        )
        print(f"figures written to {args.json}")


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    main()
