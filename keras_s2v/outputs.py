"""Where commands write: one set of rules for every output file and folder, so no run can lose what a user gave.

* An output never replaces an input, whatever ``--overwrite`` says: not a file that resolves (through
  symbolic links, ``..`` or hard links) to an input, not a file inside an input folder, and no output
  folder that equals, holds or lies inside an input.
* An existing output is kept unless ``overwrite``; a folder is replaced only when the command itself
  made it (it holds the command's marker file, e.g. ``report.json``), never a folder of someone else's files.
* Everything is checked before any work: a missing or unwritable folder, a name longer than the file
  system allows, a folder where a file should be.
* Results are written under a short hidden temporary name beside the output and moved into place at
  the end. Without ``overwrite`` the move never replaces a file that appeared meanwhile (another run
  writing the same output), so one run's result cannot silently replace another's.

Imports nothing from keras_s2v: every layer may use it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

PARTIAL = ".partial"  # every temporary name holds it (.gitignore and clean-up look for it)
_NAME_MAX = 255  # bytes; most Linux and macOS file systems


class OutputError(ValueError):
    """An output the command refuses to write, with the path and the reason."""


Inputs = Iterable[tuple[str, "str | os.PathLike | None"]]  # (flag name, path) pairs; None paths are ignored


def _real(path) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _inputs(inputs: Inputs) -> list[tuple[str, Path, Path]]:
    """(flag, given path, real path) of the inputs that exist."""
    found = []
    for flag, path in inputs:
        if path is not None and str(path) and os.path.exists(path):
            found.append((flag, Path(path), _real(path)))
    return found


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def name_max(folder) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return _NAME_MAX


def _check_name(out: Path, folder: Path) -> None:
    size = len(out.name.encode())
    if size > name_max(folder):
        raise OutputError(f"{out}: the file name is {size} bytes long; this file system allows {name_max(folder)}")


def temporary_name(out, tag: str = "", reserve: int = 0) -> str:
    """A hidden name for ``out``'s temporary beside it, never longer than the file system allows.

    ``reserve``: bytes left free for what a caller appends (``tempfile``'s random characters).
    """
    out = Path(out)
    suffix = f".{uuid.uuid4().hex[:8]}{tag}{PARTIAL}{out.suffix if len(out.suffix) <= 16 else ''}"
    room = name_max(out.parent if out.parent.is_dir() else ".") - len(suffix.encode()) - 1 - reserve
    stem = out.stem.encode()[: max(room, 0)].decode(errors="ignore")
    return f".{stem}{suffix}"


def _check_folder_writable(out: Path, folder: Path) -> None:
    """Create and remove a file in ``folder``: the only check that also holds for root and read-only mounts."""
    if not folder.exists():
        raise FileNotFoundError(f"{out}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"{out}: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=PARTIAL, dir=folder)
    except OSError as error:
        raise OutputError(f"{out}: cannot write in {folder} ({error.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def check_file(out, *, inputs: Inputs = (), overwrite: bool = False) -> Path:
    """Refuse ``out`` (a file to write) before any work; returns it as a Path."""
    out = Path(out)
    _check_name(out, out.parent if out.parent.is_dir() else Path("."))
    real = _real(out)
    for flag, given, source in _inputs(inputs):
        if real == source or (out.exists() and _same_file(out, given)):
            raise OutputError(f"{out}: is also the input {flag} ({given}); write the output to another file")
        if source.is_dir() and real.is_relative_to(source) and out.exists():
            raise OutputError(f"{out}: is part of the input {flag} ({given}); write the output elsewhere")
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; give a file name such as {out / 'talking.mp4'}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass --overwrite to replace it)")
    _check_folder_writable(out, out.parent)
    return out


def check_folder(out, *, inputs: Inputs = (), overwrite: bool = False, marker: str | None = None) -> Path:
    """Refuse ``out`` (a folder to fill) before any work; returns it as a Path.

    A non-empty ``out`` needs ``overwrite``, and then also ``marker``: a file the command writes
    into every folder it makes, so that only a folder it made itself is ever replaced.
    """
    out = Path(out)
    _check_name(out, out.parent if out.parent.is_dir() else Path("."))
    real = _real(out)
    for flag, given, source in _inputs(inputs):
        if real == source:
            raise OutputError(f"{out}: is the input {flag}; write the output to another folder")
        if source.is_relative_to(real):
            raise OutputError(f"{out}: holds the input {flag} ({given}); write the output to another folder")
        if source.is_dir() and real.is_relative_to(source):
            raise OutputError(f"{out}: lies inside the input {flag} ({given}); write the output to another folder")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out}: already exists and is not empty (pass --overwrite to replace it)")
        if marker is not None and not (out / marker).exists():
            raise OutputError(
                f"{out}: holds files this command did not write (no {marker}); give a new or empty folder"
            )
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    _check_folder_writable(out, parent)
    return out


def commit_file(tmp, out, overwrite: bool = False) -> None:
    """Move ``tmp`` to ``out``; without ``overwrite`` never replace a file that is there now."""
    tmp, out = Path(tmp), Path(out)
    if overwrite:
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)  # fails if ``out`` exists: an atomic "move unless taken"
    except FileExistsError:
        raise FileExistsError(
            f"{out}: appeared while this command ran (another run writing it?); kept it and "
            "discarded this result (pass --overwrite to replace it)"
        ) from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if out.exists():  # no hard links here: check, then move
            raise FileExistsError(
                f"{out}: appeared while this command ran; kept it (pass --overwrite to replace it)"
            ) from None
        os.replace(tmp, out)
        return
    os.unlink(tmp)


def commit_folder(staging, out, overwrite: bool = False, marker: str | None = None) -> None:
    """Move the ``staging`` folder to ``out``, replacing an old ``out`` only as ``check_folder`` allows."""
    staging, out = Path(staging), Path(out)
    if out.exists():
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        elif not overwrite or not out.is_dir() or (marker is not None and not (out / marker).exists()):
            raise FileExistsError(
                f"{out}: appeared or changed while this command ran; kept it "
                "(pass --overwrite to replace a folder this command made)"
            )
        else:
            old = out.parent / temporary_name(out, ".old")
            os.rename(out, old)
            os.rename(staging, out)
            shutil.rmtree(old, ignore_errors=True)
            return
    os.rename(staging, out)


@contextlib.contextmanager
def atomic_file(out, *, inputs: Inputs = (), overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``out``; it becomes ``out`` only when the block succeeds.

    Missing folders are made; ``check_file`` runs first; an interrupted or failed block leaves nothing behind.
    """
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{out}: cannot make its folder {out.parent} ({error.strerror})") from None
    out = check_file(out, inputs=inputs, overwrite=overwrite)
    tmp = out.parent / temporary_name(out)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~umask)
        commit_file(tmp, out, overwrite)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_folder(out, *, inputs: Inputs = (), overwrite: bool = False, marker: str | None = None) -> Iterator[Path]:
    """Yield an empty staging folder beside ``out``; it becomes ``out`` only when the block succeeds."""
    out = check_folder(out, inputs=inputs, overwrite=overwrite, marker=marker)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / temporary_name(out)
    staging.mkdir()
    try:
        yield staging
        commit_folder(staging, out, overwrite, marker)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
