"""Speaker ids and splits from the public datasets' folder layouts.

Splits are assigned per speaker, never per clip or frame, so validation and
test hold people the model never saw. A dataset that ships its own split
(LRW's ``train/val/test`` folders, LRS3's ``test``) keeps it.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import re
from pathlib import Path, PurePath

from keras_s2v.data.features import SPLITS

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".m4v", ".flv", ".wmv", ".ts", ".3gp"}

_VOXCELEB = re.compile(r"^id\d{5}$")  # VoxCeleb1 id10001 / VoxCeleb2 id00012
_GRID = re.compile(r"^s\d{1,2}$")  # GRID s1 .. s34
_LRW_SPLIT = {"train": "train", "val": "validation", "test": "test"}
_LRS3_SPLIT = {"test": "test"}  # pretrain / trainval: hashed per speaker


@dataclasses.dataclass(frozen=True)
class ClipOrigin:
    speaker: str
    split: str
    layout: str  # which rule recognised it


def split_for_speaker(speaker: str, validation_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """Stable split from a hash of the speaker id (the same on every machine and run)."""
    u = int(hashlib.sha1(speaker.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if u < test_fraction:
        return "test"
    if u < test_fraction + validation_fraction:
        return "validation"
    return "train"


@functools.lru_cache(maxsize=4)
def read_split_table(path) -> dict[str, tuple[str, str]]:
    """A split table: file -> (speaker, split), from a TSV with columns ``file``, ``speaker``, ``split``.

    The way to write a corpus's split down once (``keras_s2v/pretrained/real_split.tsv``): every model
    trained and every report made on it then holds out the same people. ``#`` lines are comments.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split table not found")
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    rows = list(csv.DictReader(lines, delimiter="\t"))
    if not rows or not {"file", "speaker", "split"} <= set(rows[0]):
        raise ValueError(f"{path}: a split table needs the tab-separated columns file, speaker, split")
    table, splits = {}, {}
    for row in rows:
        if row["split"] not in SPLITS:
            raise ValueError(f"{path}: {row['file']}: split must be one of {SPLITS}, got {row['split']!r}")
        if splits.setdefault(row["speaker"], row["split"]) != row["split"]:
            raise ValueError(
                f"{path}: speaker {row['speaker']!r} is in both {splits[row['speaker']]} and {row['split']}"
            )
        table[row["file"]] = (row["speaker"], row["split"])
    return table


def lookup_split_table(table: dict[str, tuple[str, str]], relative_path: str, table_path="the split table"):
    """(speaker, split) of a clip: the row whose file is its relative path or ends with it, else its unique name."""
    relative = PurePath(relative_path).as_posix()
    found = [row for file, row in table.items() if file == relative or file.endswith("/" + relative)]
    if not found:
        found = [row for file, row in table.items() if PurePath(file).name == PurePath(relative).name]
    if len(set(found)) != 1:
        problem = "is not in" if not found else "matches several rows of"
        raise ValueError(f"{relative_path} {problem} {table_path}")
    return found[0]


def identify(
    relative_path: str,
    speaker_from: str | None = None,
    forced_split: str | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_table=None,
) -> ClipOrigin:
    """Speaker and split of a clip from its path relative to the input it was found under.

    A ``split_table`` (``read_split_table``'s path) decides both, and a clip it does not list is an
    error. Otherwise, in order: ``speaker_from`` (a regex; its group ``speaker``, or group 1, or the
    whole match), VoxCeleb ``idNNNNN/``, GRID ``sN/``, LRW ``WORD/{train,val,test}/WORD_NNNNN``,
    LRS3 ``{pretrain,trainval,test}/ID/``, LRS2 ``{main,pretrain}/ID/``, then the
    clip's folder (or the file name for a clip given directly).
    """
    if forced_split is not None and forced_split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {forced_split!r}")
    if split_table is not None:
        speaker, split = lookup_split_table(read_split_table(split_table), relative_path, split_table)
        return ClipOrigin(speaker=speaker, split=forced_split or split, layout="split_table")
    path = PurePath(relative_path)
    parts = path.parts[:-1]
    speaker, split, layout = None, None, None
    if speaker_from:
        match = re.search(speaker_from, relative_path)
        if not match:
            raise ValueError(f"{relative_path}: --speaker-from pattern {speaker_from!r} does not match")
        if "speaker" in match.groupdict():
            speaker = match.group("speaker")
        else:
            speaker = match.group(1) if match.groups() else match.group(0)
        layout = "speaker_from"
    if speaker is None:
        for part in parts:
            if _VOXCELEB.match(part):
                speaker, layout = part, "voxceleb"
                break
            if _GRID.match(part):
                speaker, layout = part, "grid"
                break
    if speaker is None and len(parts) >= 2 and parts[-1] in _LRW_SPLIT and path.stem.startswith(parts[-2] + "_"):
        # LRW has no speaker ids; its word-level split is speaker-disjoint by construction.
        speaker, split, layout = f"lrw/{path.stem}", _LRW_SPLIT[parts[-1]], "lrw"
    if speaker is None and len(parts) >= 2 and parts[-2] in ("pretrain", "trainval", "test") and path.stem.isdigit():
        speaker, layout = parts[-1], "lrs3"
        split = _LRS3_SPLIT.get(parts[-2])
    if speaker is None and len(parts) >= 2 and parts[-2] == "main" and path.stem.isdigit():
        speaker, layout = parts[-1], "lrs2"
    if speaker is None:
        speaker = parts[-1] if parts else path.stem
        layout = "folder" if parts else "file"
    if forced_split is not None:
        split = forced_split
    elif split is None:
        split = split_for_speaker(speaker, validation_fraction, test_fraction)
    return ClipOrigin(speaker=speaker, split=split, layout=layout)


def find_videos(inputs) -> list[tuple[str, str]]:
    """Expand files and folders into (path, path relative to its input), sorted.

    A file given directly is used whatever its name (so a bad file is reported,
    not silently ignored); folders are searched for video suffixes. An input that
    does not exist at all is a mistyped path, refused before any work.
    """
    found = []
    for given in inputs:
        root = Path(given)
        if not root.exists():
            raise FileNotFoundError(f"{given}: no such file or folder")
        if root.is_dir():
            for p in sorted(root.rglob("*")):
                if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."):
                    found.append((str(p), str(p.relative_to(root))))
        else:
            found.append((str(root), root.name))
    return found
