"""The prepared-folder contract: what ``prepare`` writes, what training, export and evaluation read.

A prepared folder::

    prepare_config.json            options the folder was made with
    clips/<clip_id>.json           per-clip result (the "done" marker, written last)
    clips/<clip_id>.tfrecord       per-clip examples
    <split>-NNNNN-of-NNNNN.tfrecord  shards, rebuilt from clips/ at the end of each run
    manifest.json                  every clip: counts, or the reason it was skipped

The examples in the shards are ``features``' contract; this module names the
files around them and reads the data parameters (face crop size, audio
features) a model trained or evaluated on the folder must match.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from keras_s2v.data import audio as audio_lib

CONFIG_FILE = "prepare_config.json"
MANIFEST_FILE = "manifest.json"
CLIPS_DIR = "clips"


def data_parameters(data_dirs) -> dict:
    """``{"crop_size", "audio"}`` of prepared folders: what a model trained or evaluated on them must match.

    Folders prepared before the audio parameters were recorded used the current ones.
    Several folders must agree.
    """
    found = {}
    for folder in [data_dirs] if isinstance(data_dirs, (str, Path)) else data_dirs:
        path = Path(folder) / CONFIG_FILE
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a prepared data folder ({error}); run python -m keras_s2v.prepare") from None
        found[str(folder)] = {
            "crop_size": record.get("crop_size", 112),
            "audio": record.get("audio", audio_lib.parameters()),
        }
    first, *others = found.items()
    for folder, params in others:
        differ = parameter_differences(first[1], params)
        if differ:
            raise ValueError(f"{folder} and {first[0]} were prepared with different {', '.join(differ)}")
    return first[1]


def parameter_differences(expected: dict, actual: dict) -> list[str]:
    """Names of the data parameters that differ.

    For example ``["crop_size (112 vs 96)", "audio.sample_rate (16000 vs 8000)"]``.
    """
    out = []
    if expected.get("crop_size") != actual.get("crop_size"):
        out.append(f"crop_size ({expected.get('crop_size')} vs {actual.get('crop_size')})")
    a, b = expected.get("audio") or {}, actual.get("audio") or {}
    out += [f"audio.{k} ({a.get(k)} vs {b.get(k)})" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return out


def reshard(data_dir, out, count: int, split: str = "train") -> dict:
    """``data_dir``'s ``split`` examples dealt round-robin into ``count`` shards in ``out``, beside copies of
    its validation shards (``Task.datasets`` builds that pipeline too) and its prepare config (the pipelines
    read the crop size there) -> {"examples", "bytes"} of the ``split`` shards. For benchmarks and tests
    of file sharding; ``prepare --shard_size_mb`` re-packs a prepared folder in place."""
    import tensorflow as tf

    from keras_s2v.data import features

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in [CONFIG_FILE, *features.list_shards(data_dir, "validation")]:
        shutil.copy(Path(data_dir) / name, out / Path(name).name)
    writers = [tf.io.TFRecordWriter(str(out / features.shard_name(split, i, count))) for i in range(count)]
    examples = 0
    for record in tf.data.TFRecordDataset(features.list_shards(data_dir, split)):
        writers[examples % count].write(record.numpy())
        examples += 1
    for writer in writers:
        writer.close()
    if examples < count:
        raise ValueError(f"{data_dir}: {examples} {split} example(s), fewer than {count} shards")
    return {"examples": examples, "bytes": sum(Path(f).stat().st_size for f in features.list_shards(out, split))}
