"""Prepare talking-face videos into aligned face tracks + audio features in TFRecord shards.

    python -m keras_s2v.prepare --input VIDEO_OR_DIR [--input ...] --out DIR
    python -m keras_s2v.prepare --input DIR --out DIR --runner=beam -- --direct_num_workers=2

Inputs may also be given as plain arguments after the flags. Flags after
``--`` go to Apache Beam's own options when ``--runner=beam``.
"""

from __future__ import annotations

import os

from absl import app, flags

from keras_s2v import cli

_INPUT = flags.DEFINE_multi_string("input", [], "Video file or folder (searched recursively). Repeatable.")
_OUT = flags.DEFINE_string("out", None, "Output folder for shards and manifest.json.", required=True)
_WORKERS = flags.DEFINE_integer("workers", 1, "Clips prepared in parallel (processes).")
_RUNNER = flags.DEFINE_enum(
    "runner", "local", ["local", "beam"], "local: resumable, --workers processes; beam: Apache Beam."
)
_CROP = flags.DEFINE_integer("crop_size", 112, "Aligned face crop size in pixels.")
_DETECTOR = flags.DEFINE_enum("detector", "blazeface", ["blazeface", "blazeface_short", "dlib"], "Face detector.")
_MIN_TRACK = flags.DEFINE_integer("min_track_frames", 25, "Drop face tracks shorter than this (frames at 25 fps).")
_MAX_SEGMENT = flags.DEFINE_integer("max_segment_frames", 250, "Cut longer tracks into examples of at most this.")
_MIN_FACE = flags.DEFINE_float("min_face_size", 48.0, "Ignore faces narrower than this (pixels).")
_SPLIT = flags.DEFINE_enum("split", None, ["train", "validation", "test"], "Put every clip in this split.")
_HOLDOUT = flags.DEFINE_float(
    "holdout_tail",
    0.0,
    "Hold out the last fraction of every train track for validation (same speakers; small corpora).",
)
_SPEAKER_FROM = flags.DEFINE_string(
    "speaker_from",
    None,
    "Regex on each clip's path relative to its input; group 'speaker' (or group 1) is the speaker id.",
)
_SPLIT_TABLE = flags.DEFINE_string(
    "split_table",
    None,
    "TSV with columns file, speaker, split deciding each clip's speaker and split "
    "(e.g. keras_s2v/pretrained/real_split.tsv); a clip it does not list is skipped with a reason.",
)
_VAL = flags.DEFINE_float("validation_fraction", 0.1, "Share of speakers held out for validation.")
_TEST = flags.DEFINE_float("test_fraction", 0.1, "Share of speakers held out for test.")
_SYNC = flags.DEFINE_string(
    "sync_model",
    None,
    "Sync expert workdir (--experiment syncnet): picks the active speaker and corrects each track's AV offset.",
)
_SYNC_CONF = flags.DEFINE_float(
    "sync_min_confidence",
    0.1,
    "Shift a track's audio only when the sync expert is at least this confident of the offset.",
)
_SHARD_MB = flags.DEFINE_float("shard_size_mb", 256.0, "Target shard size.")
cli.check_flags("workers", "min_track_frames", "max_segment_frames", at_least=1)
cli.check_flags("crop_size", at_least=32)
cli.check_flags("min_face_size", "shard_size_mb", above=0)
cli.check_flags("holdout_tail", at_least=0, below=1)
cli.check_flags("validation_fraction", "test_fraction", at_least=0, below=1)
cli.check_flags("sync_min_confidence", at_least=0)
cli.check_pattern("speaker_from")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Start again if --out was prepared with other options.")


def main(argv):
    # Plain arguments are more inputs; those that look like flags (after `--`) are Beam's.
    inputs = list(_INPUT.value) + [a for a in argv[1:] if not a.startswith("--")]
    beam_args = [a for a in argv[1:] if a.startswith("--")]
    if not inputs:
        raise app.UsageError("give at least one --input VIDEO_OR_DIR")
    ok = []

    def body():
        from keras_s2v.data import prepare as prepare_lib
        from keras_s2v.evaluation.sync import SyncExpert  # the sync expert, handed to the data layer

        config = prepare_lib.PrepareConfig(
            crop_size=_CROP.value,
            detector=_DETECTOR.value,
            min_track_frames=_MIN_TRACK.value,
            max_segment_frames=_MAX_SEGMENT.value,
            min_face_size=_MIN_FACE.value,
            split=_SPLIT.value,
            speaker_from=_SPEAKER_FROM.value,
            holdout_tail=_HOLDOUT.value,
            split_table=os.path.abspath(_SPLIT_TABLE.value) if _SPLIT_TABLE.value else None,
            validation_fraction=_VAL.value,
            test_fraction=_TEST.value,
            shard_size_mb=_SHARD_MB.value,
            sync_model=_SYNC.value,
            sync_min_confidence=_SYNC_CONF.value,
        )
        if _RUNNER.value == "beam":
            manifest = prepare_lib.prepare_beam(
                inputs, _OUT.value, config, beam_args, _OVERWRITE.value, sync_loader=SyncExpert
            )
        else:
            manifest = prepare_lib.prepare(
                inputs, _OUT.value, config, _WORKERS.value, _OVERWRITE.value, sync_loader=SyncExpert
            )
        ok.append(bool(manifest["clips_ok"]))
        return prepare_lib.summary_table(manifest)

    status = cli.run_main(body)
    return 1 if status == 0 and not all(ok) else status  # no clip prepared: a failure, after the report


if __name__ == "__main__":
    app.run(main)
