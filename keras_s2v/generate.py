"""Make a talking-face video from a photo (or five) and a speech recording.

    python -m keras_s2v.generate --face PHOTO [--face PHOTO ...] --audio SPEECH --model MODEL --out OUT.mp4

MODEL is a training workdir, an export folder (SavedModel), a .tflite file or a preset
name; a preset runs on its int8 TFLite model when that passes its parity check against
Keras (built once into the preset cache), else on Keras (--backend chooses).
By default the generated lower face is blended back into the whole photo
(--blend pyramid, the default, or poisson: cv2.seamlessClone, slower);
--crop writes the aligned 112 x 112 face only. Any audio ffmpeg reads
is resampled to 16 kHz mono and streamed, so an hour of speech needs no more
memory than a minute. An existing output is kept unless --overwrite; an
interrupted run leaves no partial file under OUT.
"""

from __future__ import annotations

from absl import app, flags

from export import presets
from keras_s2v import cli, paste

_FACE = flags.DEFINE_multi_string("face", [], "Photo of the face (repeat 5 times for a 5-image model).")
_AUDIO = flags.DEFINE_string("audio", None, "Speech recording (wav, mp3, m4a, ...).", required=True)
_FPS = flags.DEFINE_float("fps", 25.0, "Output frame rate; the 0.35 s audio window is centred on each frame.")
_FACE_INDEX = flags.DEFINE_integer(
    "face_index",
    None,
    "Which face, counted from the left from 0 (default: the largest; a photo with two similar faces needs it).",
)
flags.DEFINE_alias("face-index", "face_index")
cli.define_common_flags()
_BLEND = flags.DEFINE_enum("blend", paste.DEFAULT_BLEND, paste.BLENDS, paste.BLEND_HELP)
_BACKEND = flags.DEFINE_enum("backend", presets.DEFAULT_BACKEND, presets.BACKENDS, presets.BACKEND_HELP)
cli.check_flags("fps", above=0, at_most=120)  # more is a typo: each frame needs its own 0.35 s window
cli.check_flags("face_index", at_least=0)


def main(argv):
    del argv

    def command(f):
        from keras_s2v import inference  # inside: Ctrl-C during TensorFlow's import is reported like any other

        # The output is refused before a preset's TFLite form is built (minutes, once), not after.
        inference.check_output(
            f.out, f.overwrite, [*[*(("--face", p) for p in f.face), ("--audio", f.audio)], ("--model", f.model)]
        )
        model, note = presets.choose_model(f.model, f.backend, log=cli.progress_log(f.quiet))
        summary = inference.format_summary(
            inference.generate_video(
                f.face,
                f.audio,
                model,
                f.out,
                deblur=f.deblur,
                no_deblur=f.no_deblur,
                fps=f.fps,
                crop=f.crop,
                face_index=f.face_index,
                overwrite=f.overwrite,
                batch_size=f.batch_size,
                progress=not f.quiet,
                blend=f.blend,
            )
        )
        return summary if note is None else f"{summary}\n{note}"

    return cli.run_command(command)


if __name__ == "__main__":
    app.run(main)
