"""One small interface over every form a trained generator takes.

``load_generator(path)`` accepts

* a training workdir (``model.keras``, run with Keras),
* an export folder, a ``serving/<model>`` folder or one version of it
  (SavedModel, run with ``tf.saved_model.load``, as TF Serving would),
* a ``.tflite`` file (run with LiteRT, batch 1, as a phone would),

and returns a ``frame_loop.FrameBackend``: ``identity_features(faces)`` once,
``generate_frame_pcm(identity, pcm)`` per batch of audio windows, plus
``num_identity_images``, ``window_samples`` and a ``description``. Temporal
GAN generators (training kind ``tgan``, exports with a ``generate_step``
signature) come back as ``frame_loop.StreamingGenerator``: one step per
frame, GRU states carried between calls. Lips-at-a-glance generators
(training kind ``glance``, exports with a ``generate_window`` signature) come
back as ``frame_loop.WindowedGenerator``: lip frames a window at a time,
overlapping windows cross-faded, pasted into the face. ``load_deblur(path)``
loads a trained deblurring CNN the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_s2v import workdirs
from keras_s2v.data import audio as audio_lib
from keras_s2v.model_files import ModelError  # a --model path that cannot be run, with why (also raised here)
from keras_s2v.signature_names import (
    FACES,
    FRAME,
    FRAMES,
    GENERATE_FRAME_PCM,
    GENERATE_STEP,
    GENERATE_WINDOW,
    IDENTITY_FEATURES,
    METADATA_FILE,
    NOISE,
    PCM,
    SAVED_MODEL_ASSETS,
    SERVING_DIR,
    TARGET,
)


class KerasGenerator:
    """A training workdir's ``model.keras``: identity encoder once, then the frame generator."""

    def __init__(self, model, description: str = "keras"):
        self.model = model
        self.generator = model.frame_generator()
        self.identity_keys = [k for k in self.generator.input if k != "mfcc"]
        self.num_identity_images = model.num_identity_images
        self.masked_target = bool(getattr(model, "masked_target", False))
        self.face_size = int(model.identity_encoder.input.shape[1])
        self.window_samples = audio_lib.MFCC_WINDOW_SAMPLES
        self.description = description

    def identity_features(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        x = np.asarray(faces, np.float32) / 255.0  # what the exported signature does with uint8
        outputs = self.model.identity_encoder(x, training=False)
        return {k: np.asarray(outputs[k]) for k in self.identity_keys}

    def generate_frame_pcm(self, identity: dict[str, np.ndarray], pcm: np.ndarray) -> np.ndarray:
        # The MFCC exactly as training features were made (the exported graph matches it to 1e-3).
        from keras_s2v import frame_loop

        mfcc = np.stack([audio_lib.mfcc_from_pcm_window(window) for window in np.asarray(pcm)]).astype(np.float32)
        inputs = frame_loop.identity_rows({k: identity[k] for k in self.identity_keys}, len(mfcc))
        inputs["mfcc"] = mfcc
        return np.asarray(self.generator(inputs, training=False))


def keras_streaming(model, description: str):
    """A trained ``TemporalGenerator`` as a ``StreamingGenerator``, stepping its ``step_generator()``."""
    import tensorflow as tf

    from keras_s2v import frame_loop

    step_model = model.step_generator()
    step = tf.function(lambda inputs: step_model(inputs, training=False))  # one graph, not an eager call per frame
    identity_keys = list(model.identity_encoder.output)

    def identity_fn(faces):
        outputs = model.identity_encoder(np.asarray(faces, np.float32) / 255.0, training=False)
        return {k: np.asarray(outputs[k]) for k in identity_keys}

    def step_fn(inputs):
        pcm = inputs.pop(PCM)
        if model.audio_input == "mfcc":  # exactly as training features were made
            audio = np.stack([audio_lib.mfcc_from_pcm_window(window) for window in pcm]).astype(np.float32)
        else:
            audio = pcm
        noise = inputs.pop(NOISE) * np.float32(model.noise_std)  # as the exported generate_step scales it
        return step({**inputs, "audio": audio, "noise": noise})

    return frame_loop.StreamingGenerator(
        identity_fn,
        step_fn,
        model.state_shapes(),
        model.noise_dim,
        model.window_samples,
        description,
        int(model.image_size),
    )


def saved_model_streaming(path: Path, loaded):
    """An exported temporal GAN SavedModel as a ``StreamingGenerator``."""
    from keras_s2v import frame_loop

    identity, step = loaded.signatures[IDENTITY_FEATURES], loaded.signatures[GENERATE_STEP]
    specs = step.structured_input_signature[1]
    identity_keys = list(identity.structured_outputs)
    states = {k: tuple(spec.shape[1:]) for k, spec in specs.items() if k not in (*identity_keys, PCM, NOISE)}

    def identity_fn(faces):
        return {k: v.numpy() for k, v in identity(**{FACES: faces}).items()}

    def step_fn(inputs):
        return {k: v.numpy() for k, v in step(**{k: np.asarray(inputs[k], np.float32) for k in specs}).items()}

    backend = frame_loop.StreamingGenerator(
        identity_fn,
        step_fn,
        states,
        int(specs[NOISE].shape[-1]),
        int(specs[PCM].shape[-1]),
        f"SavedModel {path}",
        int(identity.structured_input_signature[1][FACES].shape[1]),
    )
    backend.loaded = loaded  # the signatures only reference its variables
    return backend


def keras_windowed(model, description: str):
    """A trained ``GlanceGenerator`` as a ``WindowedGenerator``: its ``window_generator()`` once per window."""
    import tensorflow as tf

    from keras_s2v import frame_loop
    from keras_s2v.data.face import align

    window_model = model.window_generator()
    # One graph per batch size, not an eager call per window.
    generate = tf.function(lambda inputs: window_model(inputs, training=False), reduce_retracing=True)
    frames = int(window_model.input["log_mel"].shape[1]) // audio_lib.HOPS_PER_FRAME
    lip_size = int(model.identity_encoder.input.shape[1])
    identity_keys = [k for k in window_model.input if k != "log_mel"]

    def identity_fn(faces):
        lips = align.lip_crops(np.asarray(faces, np.float32) / 255.0, lip_size)  # as the exported graph crops
        outputs = model.identity_encoder(lips, training=False)
        return {k: np.asarray(outputs[k]) for k in identity_keys}

    def window_fn(identity, pcm):
        # The log-mel exactly as training features were made (the exported graph matches it to 1e-5).
        log_mel = np.stack([audio_lib.log_mel_from_pcm_window(window, frames) for window in pcm]).astype(np.float32)
        inputs = {k: np.repeat(identity[k], len(log_mel), axis=0) for k in identity_keys}
        return np.asarray(generate({**inputs, "log_mel": log_mel}))

    return frame_loop.WindowedGenerator(identity_fn, window_fn, frames, description, frame_loop.FACE_SIZE, lip_size)


def saved_model_windowed(path: Path, loaded):
    """An exported lips-at-a-glance SavedModel as a ``WindowedGenerator``."""
    from keras_s2v import frame_loop

    identity, generate = loaded.signatures[IDENTITY_FEATURES], loaded.signatures[GENERATE_WINDOW]
    specs = generate.structured_input_signature[1]
    frames_shape = generate.structured_outputs[FRAMES].shape  # (N, window_frames, L, L, 3)

    def identity_fn(faces):
        return {k: v.numpy() for k, v in identity(**{FACES: np.asarray(faces, np.uint8)}).items()}

    def window_fn(identity_outputs, pcm):
        inputs = {k: np.repeat(identity_outputs[k], len(pcm), axis=0) for k in specs if k != PCM}
        return generate(**{PCM: np.asarray(pcm, np.float32)}, **inputs)[FRAMES].numpy()

    backend = frame_loop.WindowedGenerator(
        identity_fn,
        window_fn,
        int(frames_shape[1]),
        f"SavedModel {path}",
        int(identity.structured_input_signature[1][FACES].shape[1]),
        int(frames_shape[2]),
    )
    backend.loaded = loaded  # the signatures only reference its variables
    return backend


class SavedModelGenerator:
    """An exported SavedModel version, called signature by signature like TF Serving.

    A masked-target export (``target`` among ``identity_features``' inputs) takes
    the target frame first in ``identity_features``' faces (``frame_loop.identity_faces``).
    """

    def __init__(self, path, loaded=None):
        from keras_s2v import model_files

        self.path = Path(path)
        loaded = loaded if loaded is not None else model_files.load_saved_model(self.path)
        missing = [s for s in (IDENTITY_FEATURES, GENERATE_FRAME_PCM) if s not in loaded.signatures]
        if missing:
            raise ModelError(
                self.path, f"SavedModel without the {', '.join(missing)} signature(s); export it with python -m export"
            )
        self._loaded = loaded
        self._identity = loaded.signatures[IDENTITY_FEATURES]
        self._generate = loaded.signatures[GENERATE_FRAME_PCM]
        self.identity_keys = [k for k in self._generate.structured_input_signature[1] if k != PCM]
        face_specs = self._identity.structured_input_signature[1]
        faces_spec = face_specs[FACES]
        self.masked_target = TARGET in face_specs  # the signature says so, not the file name
        self.num_identity_images = int(faces_spec.shape[-1]) // 3
        self.face_size = int(faces_spec.shape[1])
        self.window_samples = int(self._generate.structured_input_signature[1][PCM].shape[-1])
        self.description = f"SavedModel {self.path}"

    def identity_features(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        from keras_s2v import frame_loop

        outputs = self._identity(**frame_loop.identity_inputs(self, faces))
        return {k: v.numpy() for k, v in outputs.items()}

    def generate_frame_pcm(self, identity: dict[str, np.ndarray], pcm: np.ndarray) -> np.ndarray:
        from keras_s2v import frame_loop

        pcm = np.asarray(pcm, np.float32)
        inputs = frame_loop.identity_rows({k: identity[k] for k in self.identity_keys}, len(pcm))
        return self._generate(**{PCM: pcm}, **inputs)[FRAME].numpy()


def find_saved_model(path: Path) -> Path | None:
    """The SavedModel version folder under an export folder, ``serving/<model>`` or a version; else None."""
    if (path / "saved_model.pb").exists():
        return path
    if (path / SERVING_DIR).is_dir():
        path = path / SERVING_DIR
    models = [p for p in path.iterdir() if p.is_dir()] if path.is_dir() else []
    if len(models) == 1 and not models[0].name.isdigit():
        path = models[0]
    versions = (
        sorted(
            (p for p in path.iterdir() if p.is_dir() and p.name.isdigit() and (p / "saved_model.pb").exists()),
            key=lambda p: int(p.name),
        )
        if path.is_dir()
        else []
    )
    return versions[-1] if versions else None


def _training_kind(workdir: Path) -> str:
    try:
        return json.loads((workdir / workdirs.CONFIG_FILE).read_text())["model"]["kind"]
    except (OSError, ValueError, KeyError) as error:
        raise ModelError(workdir, f"unreadable config.json ({error})") from None


def saved_model_metadata(saved_model: Path) -> dict | None:
    path = saved_model / SAVED_MODEL_ASSETS / METADATA_FILE
    return json.loads(path.read_text()) if path.exists() else None


def _audio_parameters(metadata: dict | None) -> dict | None:
    return ((metadata or {}).get("audio") or {}).get("parameters")


def data_parameters(path, backend) -> dict:
    """``{"crop_size", "audio"}`` the model was made for (``audio`` None when not recorded: older runs and exports)."""
    path = Path(path)
    audio = None
    if path.is_file():  # .tflite: the metadata embedded by the export
        from keras_s2v import model_files

        audio = _audio_parameters(model_files.read_embedded_metadata(path))
    elif (path / workdirs.CONFIG_FILE).exists():
        try:
            audio = (json.loads((path / workdirs.DATA_FILE).read_text()).get("data_parameters") or {}).get("audio")
        except (OSError, ValueError):
            pass
    else:
        saved_model = find_saved_model(path)
        if saved_model is not None:
            audio = _audio_parameters(saved_model_metadata(saved_model))
    return {"crop_size": backend.face_size, "audio": audio}


def load_generator(path):
    """A ``FrameBackend`` for a training workdir, a SavedModel export, a .tflite file or a preset name."""
    from keras_s2v import pretrained

    path = Path(pretrained.resolve(path))
    if not path.exists():
        presets = ", ".join(p["name"] for p in pretrained.list_presets() if p["family"] != "syncnet")
        raise ModelError(path, f"no such model file or folder, nor a preset ({presets or 'none shipped'})")
    if path.is_file():
        if path.suffix != ".tflite":
            raise ModelError(path, "not a model: give a training workdir, an export folder or a .tflite file")
        from keras_s2v import lite_client

        return lite_client.load(path)
    if (path / workdirs.CONFIG_FILE).exists():
        kind = _training_kind(path)
        if kind not in ("speech2vid", "tgan", "glance"):
            raise ModelError(path, f"a {kind} model, not a talking-face generator")
        try:
            model = workdirs.load_trained_model(path)
        except FileNotFoundError as error:
            raise ModelError(path, f"no model.keras yet ({error})") from None
        if kind == "glance":
            return keras_windowed(model, f"keras {path}")
        return keras_streaming(model, f"keras {path}") if kind == "tgan" else KerasGenerator(model, f"keras {path}")
    saved_model = find_saved_model(path)
    if saved_model is not None:
        from keras_s2v import model_files

        loaded = model_files.load_saved_model(saved_model)
        if GENERATE_STEP in loaded.signatures:
            return saved_model_streaming(saved_model, loaded)
        if GENERATE_WINDOW in loaded.signatures:
            return saved_model_windowed(saved_model, loaded)
        return SavedModelGenerator(saved_model, loaded)
    raise ModelError(
        path,
        "neither a training workdir (config.json, model.keras) nor an export "
        "(serving/<model>/<version>/saved_model.pb)",
    )


class KerasDeblur:
    """A trained deblurring CNN: (N, S, S, 3) frames in [0, 1] -> sharpened frames."""

    def __init__(self, workdir):
        self.path = Path(workdir)
        kind = _training_kind(self.path)
        if kind != "deblur":
            raise ModelError(self.path, f"a {kind} model, not a deblurring CNN (train one with --experiment deblur)")
        try:
            self.model = workdirs.load_trained_model(self.path)
        except FileNotFoundError as error:
            raise ModelError(self.path, f"no model.keras yet ({error})") from None

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(np.asarray(frames, np.float32), training=False))


# a generator workdir's companion: python -m keras_s2v.train --experiment deblur --workdir W/deblur
DEBLUR_SUBDIR = "deblur"


def find_deblur(model_path) -> Path | None:
    """The deblur workdir that goes with a generator workdir (``<workdir>/deblur``), if trained."""
    candidate = Path(model_path) / DEBLUR_SUBDIR
    return candidate if (candidate / workdirs.MODEL_FILE).exists() else None


def load_deblur(path) -> KerasDeblur:
    path = Path(path)
    if not (path / workdirs.CONFIG_FILE).exists():
        raise ModelError(path, "not a deblur training workdir (no config.json)")
    return KerasDeblur(path)
