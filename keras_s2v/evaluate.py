"""Evaluate a talking-face generator against real clips, with baselines, into a report.

    python -m keras_s2v.evaluate --model MODEL (--data SHARDS | --videos FILE [--videos FILE ...]) --out DIR \
        [--sync_model SYNC_WORKDIR] [--split test] [--max_clips N] [--deblur WORKDIR | --no_deblur]

MODEL is a training workdir, an export folder or a .tflite file. Writes
DIR/report.json, DIR/report.md (one row per method, one column per metric,
mean +- std over clips) and plots. A model and data prepared with another
face size or other audio parameters are refused, naming what differs.
"""

from __future__ import annotations

from absl import app, flags, logging

from keras_s2v import cli

_MODEL = flags.DEFINE_string(
    "model", None, "Training workdir, export folder (SavedModel) or .tflite file.", required=True
)
_DATA = flags.DEFINE_string("data", None, "Prepared shards (several folders: comma-separated).")
_VIDEOS = flags.DEFINE_multi_string("videos", [], "Talking-face videos, prepared on the fly (repeatable).")
_OUT = flags.DEFINE_string("out", None, "Report folder (new or empty, unless --overwrite).", required=True)
_SPLIT = flags.DEFINE_string("split", None, "Shard split (default: test if present, else validation, else train).")
_SYNC = flags.DEFINE_string(
    "sync_model",
    None,
    "Sync expert workdir (python -m keras_s2v.train --experiment syncnet); without it the sync columns are left out.",
)
_DEBLUR = flags.DEFINE_string(
    "deblur", None, "Deblurring CNN workdir applied to the generated faces (default: MODEL/deblur if trained)."
)
_NO_DEBLUR = flags.DEFINE_bool("no_deblur", False, "Score the generator's faces without the deblurring CNN.")
_MAX_CLIPS = flags.DEFINE_integer("max_clips", None, "Evaluate at most this many clips.")
_MAX_FRAMES = flags.DEFINE_integer("max_frames", None, "Cut clips to at most this many frames.")
_ACD_STRIDE = flags.DEFINE_integer("acd_stride", 5, "Face descriptor on every n-th frame (about 0.1 s each on CPU).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing report folder.")
cli.check_flags("max_clips", "max_frames", "acd_stride", at_least=1)
flags.DEFINE_alias("sync-model", "sync_model")
flags.DEFINE_alias("max-clips", "max_clips")
flags.DEFINE_alias("no-deblur", "no_deblur")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)

    def body():
        from keras_s2v.evaluation import evaluate_lib, report

        result = evaluate_lib.evaluate(
            _MODEL.value,
            _OUT.value,
            data=_DATA.value,
            videos=_VIDEOS.value,
            split=_SPLIT.value,
            sync_model=_SYNC.value,
            deblur=_DEBLUR.value,
            no_deblur=_NO_DEBLUR.value,
            max_clips=_MAX_CLIPS.value,
            max_frames=_MAX_FRAMES.value,
            overwrite=_OVERWRITE.value,
            acd_stride=_ACD_STRIDE.value,
        )
        return f"{report.markdown_table(result['summary'])}\n\nreport: {_OUT.value}/report.md ({result['seconds']} s)"

    return cli.run_main(body)


if __name__ == "__main__":
    app.run(main)
