"""How well the sync expert finds AV offsets: in-sync held-out clips, and the same with the audio delayed +-3 frames.

    python benchmarks/sync_accuracy.py --sync_model WORKDIR --data SHARDS[,SHARDS] \\
        [--split validation] [--min_frames 30]

Prints accuracy overall, per planted shift and per data folder, and the clips it got wrong.
"""

from __future__ import annotations

from absl import app, flags

_SYNC = flags.DEFINE_string("sync_model", None, "Sync expert workdir.", required=True)
_DATA = flags.DEFINE_string("data", None, "Shard folder(s), comma-separated.", required=True)
_SPLIT = flags.DEFINE_string("split", "validation", "Split to score.")
_MIN_FRAMES = flags.DEFINE_integer("min_frames", 25, "Skip segments shorter than this.")
_SHIFTS = flags.DEFINE_list("shifts", ["0", "3", "-3"], "Planted audio delays in frames.")


def main(argv):
    del argv
    from keras_s2v.data import pipeline
    from keras_s2v.evaluation import evaluate_lib, sync

    expert = sync.SyncExpert(_SYNC.value)
    shifts = [int(s) for s in _SHIFTS.value]
    for folder in pipeline.data_dirs(_DATA.value):
        clips = [c for c in evaluate_lib.clips_from_shards(folder, _SPLIT.value) if c.num_frames >= _MIN_FRAMES.value]
        result = sync.planted_offset_accuracy(expert, clips, shifts)
        frames = sorted(c.num_frames for c in clips)
        print(
            f"{folder} [{_SPLIT.value}]: {result['clips']} clips ({frames[0]}-{frames[-1]} frames), "
            f"accuracy {result['accuracy']:.3f}; by shift "
            + ", ".join(f"{k}: {v:.3f}" for k, v in result["by_shift"].items())
            + f"; relative to the clip's own offset {result['relative_accuracy']:.3f}"
        )
        for row in result["rows"]:
            if row["found"] != row["shift"]:
                print(
                    f"   missed {row['clip']} ({row['frames']} frames): shift {row['shift']}, found {row['found']}, "
                    f"confidence {row['confidence']}"
                )


if __name__ == "__main__":
    app.run(main)
