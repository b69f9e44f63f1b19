"""A preset generator on its fastest shipped form: its TFLite models, built once from its weights.

A preset ships float16 Keras weights only (``keras_s2v.pretrained``). ``choose_model`` turns a
``--model`` that names a preset into the form ``--backend`` asks for:

* ``auto`` (the commands' default): the int8 TFLite model when it passes the export's parity check
  against Keras (frame PSNR >= 30 dB, generator alone and the whole on-device chain), else Keras;
* ``tflite_int8`` / ``tflite_float16``: that model, or an error when it fails its check;
* ``keras``: the preset's Keras model.

A TFLite form is built once, by ``export.exporter.export_model`` itself (the same conversion and
parity check as ``python -m export``), into the preset's cache folder
(``pretrained.form_dir``: ``$KERAS_S2V_CACHE/presets/<name>-<sha>.forms/<form>/``). Its int8
calibration and parity data are made on the spot from what the packages hold, nothing downloaded
and no media folder read: the synthetic corpus of ``keras_s2v.data.synth`` (two real portraits,
scikit-image's astronaut and matplotlib's Grace Hopper, speaking espeak-ng sentences) prepared
into shards exactly as ``prepare`` does, then deleted. A form that fails its parity check is
recorded (``<form>.failed.json`` beside it) and not built again for the same weights.

Layering: this module is the export's (it converts); the runtime never imports it. The ``generate``
and ``redub`` commands call ``choose_model`` and hand the runtime a plain path.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

from keras_s2v import pretrained

BACKENDS = ("auto", "keras", "tflite_int8", "tflite_float16")
DEFAULT_BACKEND = "auto"
BACKEND_HELP = (
    "The form a preset --model runs on: auto (the int8 TFLite model when it passes its parity check against "
    "Keras, else Keras), keras, tflite_int8 or tflite_float16. A TFLite form is built once from the preset's "
    "weights into the preset cache ($KERAS_S2V_CACHE, default ~/.cache/keras_s2v; a minute or two, with the "
    "export's parity check). A --model path runs as the form it is."
)
# The calibration corpus: 2 portraits x CLIPS clips of SECONDS s, prepared with the last fifth held out
# (the parity check's examples): 8 training segments give export's 64 calibration examples (8 each).
CALIBRATION_CLIPS = 4
CALIBRATION_SECONDS = 4.0
CALIBRATION_HOLDOUT = 0.2


def calibration_shards(folder, log=print) -> Path:
    """Shards made from the synthetic corpus in ``folder`` (``folder/shards``): no download, no media folder."""
    from keras_s2v.data import prepare, synth

    folder = Path(folder)
    synth.make_corpus(folder / "corpus", num_clips=CALIBRATION_CLIPS, seconds=CALIBRATION_SECONDS, seed=0, log=None)
    config = prepare.PrepareConfig(split="train", holdout_tail=CALIBRATION_HOLDOUT)
    manifest = prepare.prepare([str(folder / "corpus")], folder / "shards", config, progress=False, log=lambda _: None)
    if not manifest["splits"]:
        raise ValueError(f"{folder / 'corpus'}: the synthetic calibration corpus prepared into no shards ({manifest})")
    return folder / "shards"


def parity_summary(rows: list[dict], form: str) -> str:
    """The form's parity in a few words: int8 by its worst frame PSNR, float16 by its worst max abs error."""
    own = [r for r in rows if r.get("format") == form]
    psnr = [r["value"] for r in own if r.get("metric") == "psnr_db"]
    if psnr:
        return f"frame PSNR >= {min(psnr):.1f} dB against Keras"
    errors = [r["value"] for r in own if r.get("metric") == "max_abs_error"]
    return f"max abs error {max(errors):.2g} against Keras" if errors else f"{len(own)} checks passed"


def build_form(preset: dict, form: str, data_dir=None, log=print) -> Path:
    """``preset``'s ``form`` (``tflite_int8`` / ``tflite_float16``) built into the cache; its ``.tflite`` path.

    ``data_dir``: shards to calibrate and check on (default: the synthetic corpus, made and deleted here).
    Raises ``export.parity.ParityError`` (recorded, so later calls do not rebuild) when the form does
    not match Keras within the export's tolerance.
    """
    from export.exporter import export_model
    from export.parity import ParityError

    built = pretrained.built_form(preset, form)
    if built is not None:
        return built
    workdir = pretrained.materialize(preset)
    out = pretrained.form_dir(preset, form)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = out.parent / f".calibration.{uuid.uuid4().hex[:8]}.partial"
    try:
        if data_dir is None:
            log(f"preset {preset['name']}: making the calibration data (a synthetic corpus, prepared)")
            data_dir = calibration_shards(scratch, log)
        log(f"preset {preset['name']}: converting to {form} and checking it against Keras")
        try:
            export_model(
                workdir,
                out,
                formats_=("tflite",),
                quantizations=(form.removeprefix("tflite_"),),
                data_dir=data_dir,
                model_name=preset["name"],
                log=lambda _: None,
            )
        except ParityError as error:
            marker = out.with_name(form + pretrained.FAILED_SUFFIX)
            marker.write_text(json.dumps({"reason": str(error), "failures": error.failures}, indent=1) + "\n")
            raise
        except (ValueError, FileExistsError):  # the folder exists (ExportError): another run built it meanwhile?
            if pretrained.built_form(preset, form) is None:
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    built = pretrained.built_form(preset, form)
    if built is None:
        raise ValueError(f"{out}: the {form} export of preset {preset['name']} is incomplete; delete it and run again")
    return built


def choose_model(model, backend: str = DEFAULT_BACKEND, data_dir=None, log=print) -> tuple[str, str | None]:
    """(what to pass as the runtime's ``--model``, a line for the summary or None).

    A ``model`` that is a path, or a preset that is no generator, is returned as it is (``backend`` must then
    be ``auto``). See the module docstring for what each ``backend`` does with a preset generator.
    """
    if backend not in BACKENDS:
        raise ValueError(f"--backend {backend!r}: choose from {', '.join(BACKENDS)}")
    preset = None if model is None or os.path.exists(model) else pretrained.find(str(model))
    if preset is None or preset.get("family") not in pretrained.GENERATOR_FAMILIES:
        if backend != DEFAULT_BACKEND:
            raise ValueError(
                f"--backend {backend}: only for a preset --model (python -m keras_s2v.pretrained lists them); "
                f"{model} runs as the form it is (a workdir on Keras, an export folder as a SavedModel, "
                "a .tflite file on LiteRT)"
            )
        return model, None
    name = preset["name"]
    if backend == "keras":
        return model, f"backend: keras (preset {name}; --backend auto runs its int8 TFLite model)"
    form = "tflite_int8" if backend == DEFAULT_BACKEND else backend
    failure = pretrained.form_failure(preset, form)
    if failure and backend == DEFAULT_BACKEND:
        return model, f"backend: keras (preset {name}'s {form} model failed its parity check against Keras: {failure})"
    if failure:
        raise ValueError(f"preset {name}: its {form} model failed its parity check against Keras: {failure}")
    built, started = pretrained.built_form(preset, form), time.perf_counter()
    note = ""
    if built is None:
        try:
            built = build_form(preset, form, data_dir=data_dir, log=log)
        except Exception as error:  # noqa: BLE001 - auto falls back to Keras, saying why; an explicit form raises
            if backend != DEFAULT_BACKEND:
                raise
            return model, f"backend: keras (preset {name}'s {form} model could not be built: {error})"
        note = f"; built now from the preset's weights in {time.perf_counter() - started:.0f} s, once"
    rows = json.loads((pretrained.form_dir(preset, form) / "parity.json").read_text())["rows"]
    return str(built), f"backend: {form} (preset {name}'s {form} model; {parity_summary(rows, form)}{note})"
