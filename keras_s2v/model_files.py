"""Load a model file, or say clearly why not: one ``ModelError`` naming the file and what is wrong with it.

Every loader of a trained or exported model goes through here (``model.keras``,
SavedModel folders, ``.tflite`` files), so a cut, corrupt or foreign file is
reported the same way by every command (``cli.run_main``: ``error: <path>:
<problem>``, exit 2), never as a traceback or as a message about something else
(Keras calls a cut archive "File not found", TensorFlow blames an
``experimental_io_device`` for a missing ``variables/``).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from keras_s2v.signature_names import METADATA_NAME


class ModelError(ValueError):
    """A model file or folder that cannot be run, with why."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = Path(path), problem


def reason(error: BaseException, limit: int = 300) -> str:
    """One line on why a loader failed: Keras nests causes as "Exception encountered: ...", the innermost last."""
    text = " ".join(str(error).split("Exception encountered: ")[-1].split())
    text = text.split(". ")[0].rstrip(".") if text else type(error).__name__  # the first sentence says it
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_keras(path, expected_class: str | None = None):
    """A ``.keras`` archive, in safe mode (a Python lambda inside is refused: loading it could run any code).

    ``expected_class``: the model class it must hold (e.g. ``"Speech2Vid"``); another is a ``ModelError``.
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):  # what Keras then reports as "File not found"
        size = path.stat().st_size
        raise ModelError(path, f"not a whole .keras archive ({size} bytes: cut short, or another kind of file)")
    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as error:  # TypeError, ValueError, KeyError, BadZipFile...: Keras has many for a bad archive
        refused = " (refused in safe mode: loading it could run arbitrary code)" if "safe_mode" in str(error) else ""
        raise ModelError(path, f"cannot be loaded: {reason(error)}{refused}") from None
    if expected_class and type(model).__name__ != expected_class:
        raise ModelError(path, f"holds a {type(model).__name__} model, not the {expected_class} expected here")
    return model


def load_saved_model(path):
    """``tf.saved_model.load`` of a SavedModel version folder (``saved_model.pb`` + ``variables/``)."""
    import tensorflow as tf

    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise ModelError(path, "no saved_model.pb: not a SavedModel folder")
    if not (path / "variables" / "variables.index").is_file():  # TensorFlow's own message is about an io device
        raise ModelError(path, "SavedModel without its variables/ (variables.index and data): copy the whole folder")
    try:
        return tf.saved_model.load(str(path))
    except Exception as error:  # a cut saved_model.pb: OSError; cut variables: DataLossError, OutOfRangeError...
        if "Cannot parse file" in str(error):
            raise ModelError(path / "saved_model.pb", "does not parse as a SavedModel (cut short or corrupt)") from None
        raise ModelError(path, f"cannot be loaded as a SavedModel: {reason(error)}") from None


def load_tflite(path, num_threads: int | None = None):
    """A LiteRT ``Interpreter`` of a ``.tflite`` file."""
    from ai_edge_litert.interpreter import Interpreter

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        return Interpreter(model_path=str(path), num_threads=num_threads)
    except Exception as error:  # a cut or foreign file: "The model is not a valid Flatbuffer buffer"
        raise ModelError(path, f"not a TFLite model, or cut short ({reason(error)})") from None


def read_embedded_metadata(tflite_path) -> dict | None:
    """The ``keras_s2v`` metadata an export embeds in a .tflite file (``export.formats.embed_metadata``), or None."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(tflite_path))
    for entry in model.metadata or []:
        if entry.name in (METADATA_NAME, METADATA_NAME.encode()):
            return json.loads(bytes(model.buffers[entry.buffer].data).decode())
    return None
