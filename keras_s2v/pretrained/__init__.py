"""Shipped presets: trained models addressed by a short name (keras-hub's convention), each with a model card.

A preset is a folder of this package (or of ``$KERAS_S2V_PRESETS``, which is searched first)::

    <name>/preset.json   name, family (speech2vid | syncnet | tgan | glance), summary, weights' SHA-256
    <name>/config.json   the experiment config it was trained with (``python -m keras_s2v.train``)
    <name>/data.json     the data parameters it needs (face crop, audio features)
    <name>/model.json    the Keras model config (builds the graph without the training code)
    <name>/weights.npz   the weights, float16 where the export parity allows (``save_preset``)
    <name>/card.md       the model card: data and split, training command, held-out metrics, limits

Every command that takes ``--model`` or ``--sync_model`` also takes a preset name: ``resolve`` turns it
into a training-workdir-like folder (``config.json``, ``data.json``, float32 ``model.keras``) built once
into a cache (``$KERAS_S2V_CACHE``, default ``~/.cache/keras_s2v``) and checked against the SHA-256, so
the rest of the code loads presets exactly as it loads what ``train`` wrote. Nothing is downloaded.

A preset's other forms (its TFLite models, ``FORMS``) are built from those weights by the export
(``export.presets``, called by the commands) into ``<built folder>.forms/<form>/``, an export
folder whose ``parity.json`` says it matched Keras; ``built_form`` finds one, ``form_failure`` says
why one was refused. This layer only names the places: it never converts.

``python -m keras_s2v.pretrained`` lists them: ``name<TAB>family<TAB>summary``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

PRESETS_ENV = "KERAS_S2V_PRESETS"
CACHE_ENV = "KERAS_S2V_CACHE"
PRESET_FILE = "preset.json"
WEIGHTS_FILE = "weights.npz"
MODEL_FILE = "model.json"
CARD_FILE = "card.md"
FAMILIES = ("speech2vid", "syncnet", "tgan", "glance")
GENERATOR_FAMILIES = ("speech2vid", "tgan", "glance")
# A preset generator's forms: the Keras model, and the TFLite models the export builds from its weights.
FORMS = ("keras", "tflite_float16", "tflite_int8")
FORMS_DIR = "forms"  # <name>-<sha>.forms/<form>/: an export folder per form
FAILED_SUFFIX = ".failed.json"
_FAMILY_OF_KIND = {"speech2vid": "speech2vid", "syncnet": "syncnet", "tgan": "tgan", "glance": "glance"}


class PresetError(ValueError):
    """A preset that cannot be used, with its name and why."""


def preset_dirs() -> list[Path]:
    """Where presets are looked up: ``$KERAS_S2V_PRESETS`` (``:``-separated) first, then this package."""
    extra = [Path(p) for p in os.environ.get(PRESETS_ENV, "").split(os.pathsep) if p]
    return [*extra, Path(__file__).parent]


def list_presets() -> list[dict]:
    """Every preset's ``preset.json`` (plus ``path``), by name; the first folder wins a name."""
    found = {}
    for root in preset_dirs():
        for meta in sorted(root.glob(f"*/{PRESET_FILE}")) if root.is_dir() else []:
            info = json.loads(meta.read_text())
            found.setdefault(info["name"], {**info, "path": str(meta.parent)})
    return [found[name] for name in sorted(found)]


def find(name: str) -> dict | None:
    return next((p for p in list_presets() if p["name"] == name), None)


def resolve(value):
    """``value`` itself when it is a path that exists (or not a preset name), else the preset's built folder."""
    if value is None or os.path.exists(value):
        return value
    preset = find(str(value))
    return value if preset is None else materialize(preset)


def built_dir(preset: dict) -> Path:
    """Where ``materialize`` builds ``preset`` (one folder per weights' SHA-256)."""
    return cache_dir() / f"{preset['name']}-{preset['sha256'][:12]}"


def form_dir(preset: dict, form: str) -> Path:
    """The export folder of ``preset``'s ``form`` (``tflite_int8``, ...) in the cache, built or not."""
    if form not in FORMS[1:]:
        raise PresetError(f"preset {preset['name']}: no form {form!r} (choose from {', '.join(FORMS)})")
    built = built_dir(preset)  # beside the built folder, not in it: an export never writes inside its input
    return built.with_name(f"{built.name}.{FORMS_DIR}") / form


def built_form(preset: dict, form: str) -> Path | None:
    """The ``.tflite`` file of ``preset``'s ``form`` when it was built and passed its parity check, else None."""
    folder = form_dir(preset, form)
    try:
        report = json.loads((folder / "parity.json").read_text())
        files = json.loads((folder / "metadata.json").read_text())["files"]
    except (OSError, ValueError, KeyError):
        return None
    path = folder / files.get(form, "")
    rows = report.get("rows") or []
    return path if path.is_file() and rows and all(r.get("ok") for r in rows) else None


def form_failure(preset: dict, form: str) -> str | None:
    """Why ``preset``'s ``form`` was refused when it was last built (its parity failures), else None."""
    marker = form_dir(preset, form).with_name(form + FAILED_SUFFIX)
    try:
        return json.loads(marker.read_text())["reason"]
    except (OSError, ValueError, KeyError):
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "keras_s2v") / "presets"


def materialize(preset: dict) -> Path:
    """The preset as a workdir-like folder (float32 ``model.keras``), built once per weights' SHA-256."""
    source = Path(preset["path"])
    target = built_dir(preset)
    if (target / "model.keras").exists():
        return target
    weights = source / WEIGHTS_FILE
    if not weights.is_file() or _sha256(weights) != preset["sha256"]:
        raise PresetError(
            f"preset {preset['name']}: {weights} is missing or does not match its SHA-256 "
            "(a partial checkout? git lfs?)"
        )
    model = build(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.partial"
    staging.mkdir()
    try:
        model.save(staging / "model.keras")
        for name in ("config.json", "data.json", CARD_FILE, PRESET_FILE):
            if (source / name).exists():
                shutil.copy(source / name, staging / name)
        try:
            os.rename(staging, target)
        except OSError:  # another process built it first
            if not (target / "model.keras").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def build(folder) -> keras.Model:  # noqa: F821
    """The preset's Keras model from ``model.json`` and ``weights.npz`` (float32 variables)."""
    import keras
    import numpy as np

    _register_models()
    folder = Path(folder)
    model = keras.saving.deserialize_keras_object(json.loads((folder / MODEL_FILE).read_text()), safe_mode=True)
    with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as arrays:
        if len(arrays.files) != len(model.weights):
            raise PresetError(f"{folder}: {len(arrays.files)} weight arrays for a model of {len(model.weights)}")
        for index, variable in enumerate(model.weights):
            variable.assign(arrays[f"w{index:04d}"].astype(variable.dtype))
    return model


def _register_models() -> None:
    """Import the model modules, which register the classes that ``model.json`` and ``model.keras`` name."""
    import keras_s2v.models.glance
    import keras_s2v.models.speech2vid
    import keras_s2v.models.syncnet
    import keras_s2v.models.temporal_gan  # noqa: F401


def save_preset(workdir, out, name: str, summary: str, card: str, float16: bool = True) -> dict:
    """Write a trained workdir's ``model.keras`` as a preset folder ``out`` (``preset.json`` returned).

    Weights are stored float16 when ``float16`` (half the size; the caller checks parity), in
    the model's own variable order, so ``build`` needs no names.
    """
    import keras
    import numpy as np

    from keras_s2v import model_files, outputs

    workdir, out = Path(workdir), Path(out)
    config = json.loads((workdir / "config.json").read_text())
    family = _FAMILY_OF_KIND.get(config["model"]["kind"])
    if family is None:
        raise PresetError(f"{workdir}: a {config['model']['kind']} model is no preset family ({', '.join(FAMILIES)})")
    _register_models()
    model = model_files.load_keras(workdir / "model.keras")
    # Replaces only an earlier version of a preset (its preset.json), never another folder; never the workdir.
    with outputs.atomic_folder(out, inputs=[("workdir", workdir)], overwrite=True, marker=PRESET_FILE) as staging:
        dtype = np.float16 if float16 else np.float32
        arrays = {
            f"w{i:04d}": np.asarray(v.numpy()).astype(dtype if v.dtype == "float32" else v.dtype)
            for i, v in enumerate(model.weights)
        }
        np.savez(staging / WEIGHTS_FILE, **arrays)
        (staging / MODEL_FILE).write_text(json.dumps(keras.saving.serialize_keras_object(model), indent=1) + "\n")
        # The weights are the preset's own: a run continued from another (``model.init_from``, a path on the
        # machine that trained it) must not send a fine-tune from the preset looking for that path.
        config["model"]["init_from"] = None
        (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        data = json.loads((workdir / "data.json").read_text()) if (workdir / "data.json").exists() else {}
        (staging / "data.json").write_text(
            json.dumps({"data_parameters": data.get("data_parameters")}, indent=1) + "\n"
        )
        info = {
            "name": name,
            "family": family,
            "summary": summary,
            "experiment": config["name"],
            "weights_dtype": np.dtype(dtype).name,
            "sha256": _sha256(staging / WEIGHTS_FILE),
        }
        size = (staging / WEIGHTS_FILE).stat().st_size
        (staging / CARD_FILE).write_text(
            f"{card.rstrip()}\n\n## Weights\n\n`{WEIGHTS_FILE}`: {len(arrays)} arrays, "
            f"{info['weights_dtype']}, {size} bytes, SHA-256 `{info['sha256']}`.\n"
        )
        (staging / PRESET_FILE).write_text(json.dumps(info, indent=1) + "\n")
    return info
