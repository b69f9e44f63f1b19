"""``export_model``: a training workdir -> SavedModel, TFLite, ONNX, metadata, parity report.

Output layout::

    OUT/metadata.json                       names, shapes, dtypes, normalisation, audio parameters
    OUT/parity.json                         every check the export ran, with its tolerance
    OUT/serving/<model>/<version>/          SavedModel in TF Serving's layout
                      .../assets.extra/metadata.json
    OUT/tflite/<model>_<quantization>.tflite   the on-device signatures: identity_features, generate_frame,
                                            generate_frame_pcm (Speech2Vid) | identity_features, generate_step
                                            (temporal GAN) | identity_features, generate_window (lips at a glance)
    OUT/tflite/metadata.json                (also embedded in each .tflite)
    OUT/onnx/<signature>.onnx, OUT/onnx/metadata.json

A Speech2Vid generator makes each frame from its own audio window; a temporal
GAN streams, carrying GRU states from frame to frame
(``export.signatures.StreamingSignatures``); a lips-at-a-glance model makes a
window of lip frames at once (``export.signatures.WindowSignatures``). One path
exports all three: the signatures object says which signatures go where, and
the parity check, the int8 calibration, the metadata and the Android golden
frames follow it.

Everything is written into a hidden staging folder beside ``OUT`` and moved
into place only once the parity check passed, so a failed export leaves
nothing half-written under ``OUT``.
"""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import numpy as np

from export import formats, parity
from export.signatures import Signatures, signatures_for, write_saved_model
from keras_s2v import outputs, pretrained
from keras_s2v.data import audio as audio_lib
from keras_s2v.signature_names import (
    FACES,
    FRAME,
    FRAMES,
    GENERATE_FRAME,
    GENERATE_FRAME_PCM,
    GENERATE_STEP,
    GENERATE_WINDOW,
    IDENTITY_FEATURES,
    METADATA_FILE,
    MFCC,
    NOISE,
    PCM,
    SAVED_MODEL_ASSETS,
    SERVING_DIR,
    TARGET,
)

FORMATS = ("saved_model", "tflite", "onnx")
DEFAULT_VERSION = 1
PARITY_SAMPLES = 4
ANDROID_QUANTIZATIONS = ("int8", "float16")
GOLDEN_FRAMES = 8
# Model kinds export takes: config ``model.kind`` -> the class its checkpoint must hold.
EXPORTABLE_KINDS = {"speech2vid": "Speech2Vid", "tgan": "TemporalGenerator", "glance": "GlanceGenerator"}
GOLDEN_NOISE_FILE = "noise.bin"  # streaming models: the noise the golden frames were made with


class ExportError(ValueError):
    """Bad export input: says which file or option and what is wrong."""


def parse_list(value, known: tuple[str, ...], what: str) -> list[str]:
    items = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    unknown = [v for v in items if v not in known]
    if unknown or not items:
        raise ExportError(
            f"unknown {what} {', '.join(map(repr, unknown)) or '(none given)'}; choose from {', '.join(known)}"
        )
    return list(dict.fromkeys(items))


# --- Inputs ---------------------------------------------------------------------------------


def load_checkpoint(workdir):
    """(experiment config, trained Speech2Vid, temporal GAN or glance generator) of a workdir, or ExportError
    saying what is missing."""
    from keras_s2v import workdirs
    from keras_s2v.configs.experiments import ExperimentConfig
    from keras_s2v.training import train_lib

    workdir = Path(workdir)
    config_path, model_path = workdir / workdirs.CONFIG_FILE, workdir / workdirs.MODEL_FILE
    if not workdir.is_dir():
        raise ExportError(f"{workdir}: no such training workdir")
    if not config_path.exists():
        raise ExportError(f"{config_path}: missing; {workdir} is not a training workdir (python -m keras_s2v.train)")
    try:
        config = ExperimentConfig.from_dict(json.loads(config_path.read_text()))
    except (ValueError, KeyError, TypeError) as error:
        raise ExportError(f"{config_path}: not a keras_s2v experiment config ({error})") from None
    if config.model.kind not in EXPORTABLE_KINDS:
        raise ExportError(
            f"{workdir}: experiment {config.name!r} trains a {config.model.kind!r} model; "
            "export takes Speech2Vid generators, temporal GANs and lips-at-a-glance generators"
        )
    if not model_path.exists():
        raise ExportError(f"{model_path}: no checkpoint in {workdir}; training has not finished an epoch")
    try:
        model = workdirs.load_trained_model(workdir)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds for a corrupt archive
        raise ExportError(f"{model_path}: cannot load the checkpoint ({type(error).__name__}: {error})") from None
    expected = train_lib.build_model(config).get_config()
    got = model.get_config()
    differ = sorted(k for k in expected if k not in ("name", "trainable") and expected.get(k) != got.get(k))
    if type(model).__name__ != EXPORTABLE_KINDS[config.model.kind] or differ:
        detail = ", ".join(f"{k}: config {expected.get(k)!r}, checkpoint {got.get(k)!r}" for k in differ)
        raise ExportError(
            f"{model_path}: checkpoint of another experiment than {config.name!r} in "
            f"{config_path} ({detail or type(model).__name__})"
        )
    return config, model


def data_dir_of(workdir, data_dir=None) -> Path:
    from keras_s2v import workdirs

    if data_dir:
        return Path(data_dir)
    record = Path(workdir) / workdirs.DATA_FILE
    recorded = json.loads(record.read_text()).get("data_dir") if record.exists() else None  # presets record none
    if recorded:  # several folders (comma-separated): calibrate on the first
        return Path(recorded.split(",")[0])
    raise ExportError(
        f"{workdir}: the training data folder is not recorded; pass --data SHARDS "
        "(int8 calibration and the parity check use real examples)"
    )


def read_samples(
    data_dir,
    split: str,
    num_images: int,
    count: int,
    per_segment: int = 8,
    window_samples: int = audio_lib.MFCC_WINDOW_SAMPLES,
    noise_dim: int = 0,
    seed: int = 0,
    window_frames: int = 0,
    masked_target: bool = False,
) -> dict[str, np.ndarray]:
    """``count`` real examples from the prepared shards, as the signatures take them.

    ``faces`` uint8 (count, S, S, 3 n): identity frame(s) half a segment from
    the target; with ``masked_target``, ``target`` uint8 (count, S, S, 3): the
    target frame itself (what a masked model sees the upper half of, as in
    training); ``mfcc`` (count, 12, 35) and ``pcm`` (count, window_samples):
    the target frame's audio window (the model's: 5840 samples for the MFCC,
    2560 for a waveform temporal GAN). With ``noise_dim``: ``noise`` (count,
    noise_dim), standard normal (seeded), for ``generate_step``. With
    ``window_frames`` (lips at a glance): ``pcm`` is instead the log-mel window
    of ``window_frames`` frames starting at the target
    (``audio.log_mel_window_range``; targets chosen so the window fits the segment).
    """
    import tensorflow as tf

    from keras_s2v.data import features

    files = features.list_shards(data_dir, split)
    if not files:
        raise ExportError(
            f"{data_dir}: no {split!r} shards ({features.shard_pattern(data_dir, split)}); pass --data SHARDS"
        )
    faces, targets, mfccs, pcms = [], [], [], []
    for serialized in tf.data.TFRecordDataset(files):
        example = features.decode_example(serialized)
        frames, mfcc, pcm = example["frames"].numpy(), example["mfcc"].numpy(), example["pcm"].numpy()
        n = len(frames)
        last = max(n - window_frames, 0) if window_frames else n - 1
        for target in np.linspace(0, last, min(per_segment, last + 1)).astype(int):
            ids = [(target + n // 2 + k * max(1, n // (4 * num_images))) % n for k in range(num_images)]
            faces.append(np.concatenate([frames[i] for i in ids], axis=-1))
            targets.append(frames[target])  # the frame whose audio window is used
            hop = target * audio_lib.HOPS_PER_FRAME
            mfccs.append(mfcc[:, hop : hop + audio_lib.MFCC_WINDOW_HOPS])
            if window_frames:  # the stored pcm starts at segment_pcm_range(0, n)[0]
                start, stop = audio_lib.log_mel_window_range(int(target), window_frames)
                origin = audio_lib.segment_pcm_range(0, n)[0]
                pcms.append(audio_lib.padded_slice(pcm, start - origin, stop - origin))
            else:
                start = audio_lib.segment_window_start(int(target), window_samples)
                pcms.append(audio_lib.padded_slice(pcm, start, start + window_samples))
            if len(faces) == count:
                break
        if len(faces) == count:
            break
    if not faces:
        raise ExportError(f"{data_dir}: the {split!r} shards hold no examples")
    samples = {FACES: np.stack(faces), MFCC: np.stack(mfccs).astype(np.float32), PCM: np.stack(pcms).astype(np.float32)}
    if masked_target:
        samples[TARGET] = np.stack(targets)
    if noise_dim:
        rng = np.random.default_rng(seed)
        samples[NOISE] = rng.standard_normal((len(faces), noise_dim)).astype(np.float32)
    return samples


def model_samples(signatures, data_dir, split: str, count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``read_samples`` shaped for ``signatures``' model: its window length, its noise, its window of frames."""
    return read_samples(
        data_dir,
        split,
        getattr(signatures.model, "num_identity_images", 1),
        count,
        window_samples=signatures.window_samples,
        noise_dim=signatures.noise_dim,
        seed=seed,
        window_frames=getattr(signatures, "window_frames", 0),
        masked_target=signatures.masked_target,
    )


def representative_dataset(signatures: Signatures, samples: dict):
    """Calibration for int8: each real example through every on-device signature, batch 1.

    A streaming model's ``generate_step`` is calibrated on the states it
    meets in use: those of the Keras step chain over the calibration
    windows in order (``formats.stream_steps``), each window with its own
    example's identity features. A masked model's ``identity_features`` sees
    each example's own target frame, whose window ``generate_frame*`` gets.
    """
    if signatures.state_shapes:
        return _streaming_representative_dataset(signatures, samples)
    if GENERATE_WINDOW in signatures.names:
        return _window_representative_dataset(signatures, samples)

    face_inputs = [spec.name for spec in signatures.input_specs(IDENTITY_FEATURES)]  # faces (and target)

    def generate():
        for i in range(len(samples[FACES])):
            one = {k: v[i : i + 1] for k, v in samples.items()}
            identity = signatures.run_keras(IDENTITY_FEATURES, one)
            yield IDENTITY_FEATURES, {k: one[k] for k in face_inputs}
            yield GENERATE_FRAME, {**identity, MFCC: one[MFCC]}
            yield GENERATE_FRAME_PCM, {**identity, PCM: one[PCM]}

    return generate


def _streaming_representative_dataset(signatures, samples: dict):
    cache = []

    def generate():
        if not cache:  # the converter reads the data more than once: run the Keras chain once
            identity = signatures.run_keras(IDENTITY_FEATURES, samples)
            steps = formats.stream_steps(
                formats.KerasRunner(signatures), identity, samples[PCM], samples[NOISE], signatures.state_shapes
            )
            for i, (inputs, _) in enumerate(steps):
                cache.append((IDENTITY_FEATURES, {FACES: samples[FACES][i : i + 1]}))
                cache.append((GENERATE_STEP, inputs))
        yield from cache

    return generate


def _window_representative_dataset(signatures, samples: dict):
    """Each real face through ``identity_features`` and its window of pcm through ``generate_window``, batch 1."""
    cache = []

    def generate():
        if not cache:  # the converter reads the data more than once: run Keras once
            identity = signatures.run_keras(IDENTITY_FEATURES, samples)
            for i in range(len(samples[FACES])):
                cache.append((IDENTITY_FEATURES, {FACES: samples[FACES][i : i + 1]}))
                cache.append(
                    (GENERATE_WINDOW, {**{k: v[i : i + 1] for k, v in identity.items()}, PCM: samples[PCM][i : i + 1]})
                )
        yield from cache

    return generate


# --- Metadata -------------------------------------------------------------------------------


def tflite_models(signatures: Signatures, work_dir: Path, quantizations, calibration: dict | None):
    """(quantization, .tflite bytes) of the on-device signatures at a fixed batch of 1.

    The phone runs one window at a time; a fixed batch gives every transposed
    convolution a constant output shape, so XNNPACK runs it (with a free
    batch LiteRT's single-threaded reference kernel did: 80% of the
    s2v_mobile int8 frame time).
    """
    source = Path(work_dir) / "_batch1_saved_model"
    write_saved_model(signatures, source, signatures.on_device_names, batch=1)
    try:
        for quantization in quantizations:
            rep = representative_dataset(signatures, calibration) if quantization == "int8" else None
            yield (
                quantization,
                formats.to_tflite(source, signatures.on_device_names, quantization, rep, signatures.int8_float_ops),
            )
    finally:
        shutil.rmtree(source, ignore_errors=True)


def build_metadata(
    config, signatures: Signatures, model_name: str, version: int, names=None, batch: int | None = None
) -> dict:
    """Everything a client needs to call the export; shapes start with the batch (-1: any).

    ``names``: the signatures described (default: all of ``signatures.names``).
    """
    import keras_s2v

    def spec(shape, dtype):
        return {"shape": [batch or -1, *shape], "dtype": dtype}

    sigs = {}
    for name in signatures.names if names is None else names:
        sigs[name] = {
            "inputs": {s.name: spec(s.shape[1:], s.dtype.name) for s in signatures.input_specs(name)},
            "outputs": {k: spec(shape, "float32") for k, shape in signatures.output_specs(name).items()},
        }
    window = signatures.window_samples
    metadata = {
        "model_name": model_name,
        "version": version,
        "experiment": config.name,
        "model_config": config.to_dict()["model"],
        "keras_s2v_version": getattr(keras_s2v, "__version__", "0.1.0"),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "signatures": sigs,
        "masked_target": signatures.masked_target,
        "normalisation": {
            FACES: "uint8 RGB 0..255, n aligned 112x112 faces stacked on channels (n = num_identity_images); "
            "aligned like keras_s2v.data.face.align.align_face (similarity on eyes and nose to the canonical face)",
            FRAME: "float32 RGB in [0, 1]",
            PCM: "float32 mono in [-1, 1] at sample_rate",
        },
        "audio": {
            "parameters": audio_lib.parameters(),
            "sample_rate": audio_lib.SAMPLE_RATE,
            "fps": audio_lib.FPS,
            "samples_per_frame": audio_lib.SAMPLES_PER_FRAME,
            "pcm_window_samples": window,
            "pcm_window_offset": audio_lib.window_range(0, audio_lib.FPS, window)[0],
            "pcm_window": "frame t reads samples "
            "[t * samples_per_frame + pcm_window_offset, ... + pcm_window_samples), "
            "zero outside the audio",
            "mfcc": {
                "coefficients": audio_lib.MFCC_COEFFS,
                "steps": audio_lib.MFCC_WINDOW_HOPS,
                "win_length": audio_lib.WIN_LENGTH,
                "hop_length": audio_lib.HOP_LENGTH,
                "fft_length": audio_lib.FFT_LENGTH,
                "window": "hamming",
                "mel_bands": audio_lib.MFCC_MEL_BANDS,
                "fmin": audio_lib.MFCC_FMIN,
                "fmax": audio_lib.MFCC_FMAX,
                "log_floor": audio_lib.LOG_FLOOR,
                "cepstra_kept": "2..13 of 13 (orthonormal DCT-II of log mel)",
            },
        },
    }
    if not signatures.uses_mfcc:  # a waveform model reads the raw window itself
        del metadata["audio"]["mfcc"]
    if signatures.masked_target:
        metadata["normalisation"][TARGET] = (
            "uint8 RGB 0..255, the aligned 112x112 frame being made (aligned as faces), one per row: the graph puts "
            "it before faces on channels and zeroes its lower half (rows 56 on), so the frame keeps its pose, light "
            "and background and only the mouth comes from the audio; a photo is its own target (its first face), a "
            "re-dubbed video gives each frame's own face with that frame's pcm window"
        )
    if GENERATE_WINDOW in signatures.names:
        metadata["audio"].update(_window_audio(signatures))
        metadata["windowed"] = _window_metadata(signatures)
        metadata["normalisation"][FACES] = (
            "uint8 RGB 0..255, one aligned 112x112 face (keras_s2v.data.face.align."
            "align_face); the graph crops its lip_box and resizes it to lip_size"
        )
        metadata["normalisation"][FRAMES] = "float32 RGB in [0, 1]: lip frames of the face's lip_box, lip_size square"
        del metadata["normalisation"][FRAME]
    if signatures.state_shapes:
        metadata["streaming"] = {
            "signature": GENERATE_STEP,
            "states": [{"name": k, **spec(shape, "float32")} for k, shape in signatures.state_shapes.items()],
            "noise_dim": signatures.noise_dim,
            "noise_std": signatures.noise_std,
            NOISE: "float32 standard normal, a fresh draw per video frame; the graph scales it by noise_std",
            "usage": "feed each state output back as the next step's input; zeros first; "
            "one generate_step per video frame in order",
        }
    return metadata


def _window_audio(signatures) -> dict:
    """A glance model's ``audio`` entries: its pcm is a window of frames, its feature the log-mel."""
    return {
        "pcm_window_samples": signatures.window_samples,
        "pcm_window_offset": audio_lib.log_mel_window_range(0, signatures.window_frames)[0],
        "pcm_window": "window k (video frames hop_frames * k .. hop_frames * k + window_frames - 1) reads samples "
        "[hop_frames * k * samples_per_frame + pcm_window_offset, ... + pcm_window_samples), zero outside the audio",
        "log_mel": {
            "bands": audio_lib.LOG_MEL_BANDS,
            "steps_per_frame": audio_lib.HOPS_PER_FRAME,
            "win_length": audio_lib.WIN_LENGTH,
            "hop_length": audio_lib.HOP_LENGTH,
            "fft_length": audio_lib.FFT_LENGTH,
            "window": "hamming",
            "fmin": audio_lib.LOG_MEL_FMIN,
            "fmax": audio_lib.LOG_MEL_FMAX,
            "log_floor": audio_lib.LOG_FLOOR,
            "first_centre": audio_lib.LOG_MEL_FIRST_CENTRE,
            "computed": "in the graph from pcm (natural log of mel power + log_floor)",
        },
    }


def _window_metadata(signatures) -> dict:
    """How a client tiles, blends and pastes a glance model's windows (``frame_loop.WindowedGenerator``)."""
    top, left, side = signatures.lip_box
    return {
        "signature": GENERATE_WINDOW,
        "window_frames": signatures.window_frames,
        "hop_frames": signatures.hop,
        "sample_rate": audio_lib.SAMPLE_RATE,
        "fps": audio_lib.FPS,
        "lip_size": signatures.lip_size,
        "lip_box": {"top": top, "left": left, "side": side, "face_size": signatures.image_size},
        "usage": "run generate_window on windows k = 0, 1, ... (window k starts at video frame hop_frames * k); "
        "frame hop_frames * k + j (0 <= j < hop_frames) is w * window k's frame j + (1 - w) * window k-1's frame "
        "j + hop_frames, w = (j + 0.5) / hop_frames (window 0 alone for k = 0); resize the lips to lip_box.side and "
        "blend them into the aligned face at lip_box with a raised-cosine feathered mask (keras_s2v.paste."
        "lips_into_face); 25 fps only",
    }


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


# --- The export -----------------------------------------------------------------------------


def _android_files(model_name: str, streaming: bool = False) -> list[str]:
    return (
        [f"{model_name}_{q}.tflite" for q in ANDROID_QUANTIZATIONS]
        + [METADATA_FILE, "face.png", "speech.wav", *[f"golden_{q}.png" for q in ANDROID_QUANTIZATIONS]]
        + ([GOLDEN_NOISE_FILE] if streaming else [])
    )


def export_model(
    workdir,
    out,
    formats_: tuple = FORMATS,
    quantizations: tuple = formats.QUANTIZATIONS,
    data_dir=None,
    model_name: str | None = None,
    version: int = DEFAULT_VERSION,
    overwrite: bool = False,
    android_assets=None,
    calibration_samples: int = 64,
    sample=None,
    log=print,
) -> dict:
    """Export a trained workdir; returns the report (paths, parity rows). Raises ExportError / ParityError.

    ``sample``: optional (aligned faces uint8 (S, S, 3 n), speech float32
    PCM) for the Android assets; by default a held-out segment of the data.
    A masked model's golden frames take the first face as the target (a photo).
    """
    formats_ = parse_list(formats_, FORMATS, "format")
    quantizations = parse_list(quantizations, formats.QUANTIZATIONS, "quantization")
    workdir = pretrained.resolve(workdir)  # a preset name: its built folder
    inputs = [("--workdir", workdir), *(("--data", d) for d in (str(data_dir).split(",") if data_dir else []))]
    out = outputs.check_folder(out, inputs=inputs, overwrite=overwrite, marker=METADATA_FILE)
    if android_assets is not None and (
        "tflite" not in formats_ or not set(ANDROID_QUANTIZATIONS) <= set(quantizations)
    ):
        raise ExportError("--android_assets needs --formats with tflite and --quantize with int8,float16")

    config, model = load_checkpoint(workdir)
    signatures = signatures_for(model)
    model_name = model_name or config.name
    if android_assets is not None:
        android_assets = Path(android_assets)
        streaming = bool(signatures.state_shapes)
        clash = [name for name in _android_files(model_name, streaming) if (android_assets / name).exists()]
        if clash and not overwrite:
            raise ExportError(f"{android_assets}: already holds {', '.join(clash)}; pass --overwrite to replace them")
    data_dir = data_dir_of(workdir, data_dir)
    parity_samples = model_samples(signatures, data_dir, held_out_split(data_dir, config), PARITY_SAMPLES)
    metadata = build_metadata(config, signatures, model_name, version)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / outputs.temporary_name(out)
    try:
        staging.mkdir()
    except OSError as error:
        raise ExportError(f"{out}: cannot write there ({error.strerror})") from None
    try:
        report = _export_into(
            staging,
            signatures,
            config,
            model_name,
            version,
            formats_,
            quantizations,
            data_dir,
            parity_samples,
            metadata,
            calibration_samples,
            log,
        )
        if android_assets is not None:
            faces, speech = sample if sample is not None else sample_face_and_speech(data_dir, config)
            tflite_metadata = json.loads((staging / "tflite" / METADATA_FILE).read_text())
            _write_android_assets(
                staging / "android", staging, model_name, tflite_metadata, faces, speech, log, signatures
            )
        _write_json(staging / METADATA_FILE, {**metadata, "files": report["files"]})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if android_assets is not None:
        android_assets.mkdir(parents=True, exist_ok=True)
        for item in sorted((staging / "android").iterdir()):
            shutil.move(item, android_assets / item.name)  # may cross file systems
        (staging / "android").rmdir()
        report["android_assets"] = str(android_assets)
    try:
        outputs.commit_folder(staging, out, overwrite, marker=METADATA_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report["out"] = str(out)
    return report


def held_out_split(data_dir, config) -> str:
    """The validation split when the shards have one (parity, sample clip), else the training split."""
    from keras_s2v.data import features

    validation = config.data.validation_split
    return validation if features.list_shards(data_dir, validation) else config.data.train_split


def _export_into(
    staging: Path,
    signatures,
    config,
    model_name,
    version,
    formats_,
    quantizations,
    data_dir,
    parity_samples,
    metadata,
    calibration_samples,
    log,
) -> dict:
    files, runners = {}, []
    saved_model = staging / SERVING_DIR / model_name / str(version)
    names, on_device = signatures.names, signatures.on_device_names
    log(f"SavedModel -> {saved_model.relative_to(staging)} ({', '.join(names)})")
    write_saved_model(signatures, saved_model)
    _write_json(saved_model / SAVED_MODEL_ASSETS / METADATA_FILE, metadata)
    if "saved_model" in formats_:
        files["saved_model"] = str(saved_model.relative_to(staging))
        runners.append((formats.SavedModelRunner(saved_model), "float32", names))
    if "tflite" in formats_:
        calibration = None
        if "int8" in quantizations:
            calibration = model_samples(signatures, data_dir, config.data.train_split, calibration_samples, seed=1)
            log(f"int8 calibration on {len(calibration[FACES])} training examples from {data_dir}")
        tflite_metadata = build_metadata(config, signatures, model_name, version, on_device, batch=1)
        for quantization, model_bytes in tflite_models(signatures, staging, quantizations, calibration):
            path = staging / "tflite" / f"{model_name}_{quantization}.tflite"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(formats.embed_metadata(model_bytes, {**tflite_metadata, "quantization": quantization}))
            flex = sorted(op for op in formats.tflite_ops(path) if op.startswith("Flex"))
            if flex:
                raise ExportError(
                    f"{path.name}: needs TensorFlow (Flex) ops {', '.join(flex)}; only builtin ops run on device"
                )
            log(f"TFLite {quantization:<8} -> {path.relative_to(staging)} ({path.stat().st_size / 1e6:.2f} MB)")
            files[f"tflite_{quantization}"] = str(path.relative_to(staging))
            runners.append((formats.LiteRunner(path, name=f"tflite_{quantization}"), quantization, on_device))
        _write_json(staging / "tflite" / METADATA_FILE, tflite_metadata)
    if "onnx" in formats_:
        paths = {}
        for name in on_device:
            paths[name] = staging / "onnx" / f"{name}.onnx"
            paths[name].parent.mkdir(parents=True, exist_ok=True)
            try:
                formats.to_onnx(saved_model, name, paths[name])
            except Exception as error:  # noqa: BLE001 - tf2onnx raises many kinds for an op it cannot map
                raise ExportError(
                    f"ONNX: tf2onnx cannot convert the {name} signature ({type(error).__name__}: "
                    f"{error}); export without it: --formats saved_model,tflite"
                ) from None
            files[f"onnx_{name}"] = str(paths[name].relative_to(staging))
        log(f"ONNX -> onnx/ ({', '.join(on_device)})")
        renamed = {}  # a streaming model's new states: ONNX gives no output an input's name
        for name in on_device:
            inputs = [spec.name for spec in signatures.input_specs(name)]
            moved = {
                k: v for k, v in formats.onnx_output_names(inputs, signatures.output_specs(name)).items() if k != v
            }
            if moved:
                renamed[name] = moved
        _write_json(
            staging / "onnx" / METADATA_FILE, {**metadata, "onnx_output_names": renamed} if renamed else metadata
        )
        runners.append((formats.OnnxRunner(paths), "float32", on_device))

    reference = formats.KerasRunner(signatures)
    rows = []
    for runner, kind, checked in runners:
        rows += parity.compare(reference, runner, kind, parity_samples, checked, signatures.state_shapes)
    _write_json(staging / "parity.json", {"samples": len(parity_samples[FACES]), "data": str(data_dir), "rows": rows})
    log("parity against Keras on real validation examples:\n" + parity.table(rows))
    failures = [r for r in rows if not r["ok"]]
    if failures:
        raise parity.ParityError(failures)
    if "saved_model" not in formats_:
        shutil.rmtree(staging / SERVING_DIR)
    return {"files": files, "parity": rows, "runners": [r.name for r, _, _ in runners]}


def _write_android_assets(
    folder: Path,
    staging: Path,
    model_name: str,
    metadata: dict,
    faces: np.ndarray,
    waveform: np.ndarray,
    log,
    signatures,
) -> None:
    """int8 + float16 models, metadata, a sample aligned face and speech clip, golden frames for them.

    A streaming model's golden frames are picked from its ``generate_step``
    chain over every window of the speech, in order, fed the noise in
    ``noise.bin`` (float32 little-endian, one row of ``noise_dim`` per frame).
    A masked model's goldens treat ``face.png`` as a photo: its first face is
    also the ``target`` (what an app does with a still).
    """
    import cv2

    from keras_s2v.data import media

    folder.mkdir(parents=True)
    for quantization in ANDROID_QUANTIZATIONS:
        shutil.copy2(staging / "tflite" / f"{model_name}_{quantization}.tflite", folder)
    cv2.imwrite(
        str(folder / "face.png"), np.concatenate(np.split(faces, faces.shape[-1] // 3, axis=-1), axis=1)[..., ::-1]
    )
    media.write_wav(folder / "speech.wav", waveform)
    waveform = media.read_audio(folder / "speech.wav")  # goldens from the file as an app reads it (int16)
    total = audio_lib.num_frames(len(waveform))
    indices = np.linspace(0, total - 1, GOLDEN_FRAMES).round().astype(int)
    streaming = bool(signatures.state_shapes)
    windowed = GENERATE_WINDOW in signatures.names
    if windowed:  # every frame's row in order: the windows are cut from them, cross-faded
        pcm = frame_loop_rows(waveform, total, signatures.window_frames)
    elif streaming:  # every window in order: the states carry from frame to frame
        window = signatures.window_samples
        pcm = np.stack([audio_lib.pcm_window(waveform, t, audio_lib.FPS, window) for t in range(total)]).astype(
            np.float32
        )
        noise = np.random.default_rng(0).standard_normal((total, signatures.noise_dim)).astype("<f4")
        (folder / GOLDEN_NOISE_FILE).write_bytes(noise.tobytes())
    else:
        pcm = np.stack([audio_lib.pcm_window(waveform, int(t)) for t in indices]).astype(np.float32)
    for quantization in ANDROID_QUANTIZATIONS:
        runner = formats.LiteRunner(folder / f"{model_name}_{quantization}.tflite")
        identity = runner.run(IDENTITY_FEATURES, signatures.identity_inputs(faces[None]))
        if windowed:  # the blended lip frames, before they are pasted into the face
            frames = formats.window_lips(runner, identity, pcm, signatures.window_frames)[indices]
        elif streaming:
            frames = formats.stream_frames(runner, identity, pcm, noise, signatures.state_shapes)[indices]
        else:
            frames = np.concatenate([runner.run(GENERATE_FRAME_PCM, {**identity, PCM: p[None]})[FRAME] for p in pcm])
        strip = np.concatenate(list((np.clip(frames, 0, 1) * 255).round().astype(np.uint8)), axis=1)
        cv2.imwrite(str(folder / f"golden_{quantization}.png"), strip[..., ::-1])
    android = {
        "golden_frame_indices": indices.tolist(),
        "face": "face.png",
        "speech": "speech.wav",
        "models": {q: f"{model_name}_{q}.tflite" for q in ANDROID_QUANTIZATIONS},
        "golden": {q: f"golden_{q}.png" for q in ANDROID_QUANTIZATIONS},
    }
    if signatures.masked_target:
        android["target"] = "the first face of face.png, a photo being its own target"
    if windowed:
        android["golden_frames"] = (
            "the blended lip frames (lip_size x lip_size, windowed.usage) at the golden "
            "indices, before pasting into the face"
        )
    if streaming:
        android["golden_noise"] = {
            "file": GOLDEN_NOISE_FILE,
            "dtype": "float32",
            "byte_order": "little",
            "shape": list(noise.shape),
            "rows": "one per video frame, in order",
        }
    _write_json(folder / METADATA_FILE, {**metadata, "android": android})
    log(f"Android assets: {', '.join(sorted(p.name for p in folder.iterdir()))}")


def frame_loop_rows(waveform: np.ndarray, total: int, window_frames: int) -> np.ndarray:
    """(total, row) each frame's ``frame_loop.WindowedGenerator`` row: both windows that cover it."""
    from keras_s2v import frame_loop

    return frame_loop.pcm_windows(waveform, 0, total, samples=frame_loop.windowed_row_samples(window_frames))


def sample_face_and_speech(data_dir, config) -> tuple[np.ndarray, np.ndarray]:
    """A held-out segment's identity face(s) (S, S, 3 n) uint8 and its speech (float32 PCM).

    No target for a masked model: the Android goldens use the first face, as an app does with a photo.
    """
    import tensorflow as tf

    from keras_s2v.data import features

    best = None
    for serialized in tf.data.TFRecordDataset(features.list_shards(data_dir, held_out_split(data_dir, config))):
        example = features.decode_example(serialized)
        if best is None or int(example["num_frames"]) > int(best["num_frames"]):
            best = {k: example[k].numpy() for k in ("frames", "pcm", "num_frames")}
    n, num_images = len(best["frames"]), config.model.num_identity_images
    faces = np.concatenate([best["frames"][(k * n) // num_images] for k in range(num_images)], axis=-1)
    # The segment's PCM starts 2600 samples before its first frame; keep the frames' own span.
    start = -audio_lib.MFCC_WINDOW_OFFSET
    return faces, best["pcm"][start : start + n * audio_lib.SAMPLES_PER_FRAME]
