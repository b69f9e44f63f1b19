"""Render a synthetic talking-face corpus with exact ground truth (espeak-ng speech, warped portraits).

    python -m keras_s2v.synth --out DIR [--num-clips 6] [--seconds 4] [--size 256] [--seed 0]
                              [--portraits DIR] [--noinclude-default-portraits] [--overwrite]

Writes DIR/<portrait>/<clip_id>.mp4 (audio muxed) + <clip_id>.json (per-frame
landmarks, phoneme timeline, text, voice) and DIR/corpus.json. Existing clips
are kept and skipped unless --overwrite. Flags take dashes or underscores.
"""

from __future__ import annotations

from absl import app, flags

from keras_s2v import cli

_OUT = flags.DEFINE_string("out", None, "Output folder.", required=True)
_NUM_CLIPS = flags.DEFINE_integer("num_clips", 4, "Clips per portrait.", lower_bound=1)
_SECONDS = flags.DEFINE_float("seconds", 4.0, "Approximate clip length (sentences are picked to fill it).")
_SIZE = flags.DEFINE_integer("size", 256, "Output frame side in pixels (square).", lower_bound=32)
_SEED = flags.DEFINE_integer("seed", 0, "Random seed: the same seed gives the same corpus.")
_PORTRAITS = flags.DEFINE_string("portraits", None, "Folder of portrait images to add (faceless ones are skipped).")
_DEFAULTS = flags.DEFINE_bool(
    "include_default_portraits", True, "Include the packaged portraits (skimage astronaut, matplotlib Grace Hopper)."
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace existing clips instead of skipping them.")
cli.check_flags("seconds", above=0)
for _name in ("num_clips", "include_default_portraits"):
    flags.DEFINE_alias(_name.replace("_", "-"), _name)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")

    def body():
        from keras_s2v.data import synth as synth_lib

        try:
            summary = synth_lib.make_corpus(
                _OUT.value,
                portrait_dir=_PORTRAITS.value,
                include_default_portraits=_DEFAULTS.value,
                num_clips=_NUM_CLIPS.value,
                seconds=_SECONDS.value,
                size=_SIZE.value,
                seed=_SEED.value,
                overwrite=_OVERWRITE.value,
            )
        except synth_lib.EspeakError as error:  # espeak-ng missing or failing: reported like bad input
            raise ValueError(str(error)) from None
        return synth_lib.summary_text(summary)

    return cli.run_main(body)


if __name__ == "__main__":
    app.run(main)
