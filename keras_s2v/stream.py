"""A photo speaking live: raw PCM in on standard input, raw RGB frames out on standard output as soon as each is ready.

    ffmpeg -v error -re -i speech.wav -f s16le -ac 1 -ar 16000 - \\
      | python -m keras_s2v.stream --face photo.jpg --model s2v_real \\
      | ffplay -f rawvideo -pixel_format rgb24 -video_size WxH -framerate 25 -

Standard input (or --pcm FILE, a named pipe say): 16 kHz mono 16-bit little-endian PCM
(s16le), read until it ends, in pieces of any size. The face is found and its
identity computed once; then a line "ready: WxH rgb24 ..." on standard error gives
the frame size, and frame t goes out as soon as the audio its window reads has
arrived: the audio through frame t + 5 for the MFCC models at 25 fps (their 0.365 s
window ends 0.1625 s after its frame; the line gives the model's own look-ahead).
Standard output holds the frames and nothing else, W x H x 3 bytes each (the photo
with the lower face blended in, or the aligned 112 x 112 face with --crop): what
else would print there (the summary, a library) goes to standard error. MODEL is
what generate takes (a preset runs on its int8 TFLite model, --backend chooses).
Frames already written stay written when the run is stopped.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging

from export import presets
from keras_s2v import cli, paste

_FACE = flags.DEFINE_multi_string("face", [], "Photo of the face (repeat 5 times for a 5-image model).")
_MODEL = flags.DEFINE_string(
    "model", None, "Preset name, training workdir, export folder or .tflite file.", required=True
)
_PCM = flags.DEFINE_string(
    "pcm", "-", "Raw 16 kHz mono s16le PCM: '-' for standard input (the default), or a file or named pipe."
)
_FPS = flags.DEFINE_float("fps", 25.0, "Output frame rate; the audio window is centred on each frame.")
_FACE_INDEX = flags.DEFINE_integer(
    "face_index",
    None,
    "Which face, counted from the left from 0 (default: the largest; a photo with two similar faces needs it).",
)
flags.DEFINE_alias("face-index", "face_index")
_DEBLUR = flags.DEFINE_string("deblur", None, "Deblur training workdir (default: <model workdir>/deblur when trained).")
_NO_DEBLUR = flags.DEFINE_bool("no_deblur", False, "Skip the deblurring CNN.")
flags.DEFINE_alias("no-deblur", "no_deblur")
_CROP = flags.DEFINE_bool("crop", False, "Write the aligned 112 x 112 face only, not the pasted-back photo.")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size",
    1,
    "Most audio windows per generator call. Only windows already ready share a call, so more helps a Keras "
    "model keep up with audio that arrives faster than real time, at the cost of the first frames' latency.",
)
flags.DEFINE_alias("batch-size", "batch_size")
_BLEND = flags.DEFINE_enum("blend", paste.DEFAULT_BLEND, paste.BLENDS, paste.BLEND_HELP)
_BACKEND = flags.DEFINE_enum("backend", presets.DEFAULT_BACKEND, presets.BACKENDS, presets.BACKEND_HELP)
_QUIET = flags.DEFINE_bool("quiet", False, "Say nothing on standard error but the ready line, errors and the summary.")
cli.check_flags("fps", above=0, at_most=120)
cli.check_flags("face_index", at_least=0)
cli.check_flags("batch_size", at_least=1)


def _frames_output():
    """Standard output's descriptor, for the frames alone: from here on whatever else writes to standard output
    (a library's print, a child process) goes to standard error instead."""
    if os.isatty(1):
        raise ValueError(
            "standard output is a terminal: pipe the raw frames into a program "
            "(... | ffplay -f rawvideo -pixel_format rgb24 -video_size WxH -framerate 25 -)"
        )
    frames = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return frames


def _pcm_input(path: str):
    """(binary stream, its name for messages). Standard input is taken over: a child process sees /dev/null there,
    so none can swallow the audio. Unbuffered: each read returns what has arrived, and a run stopped while the
    reading thread waits for more is not held up by a buffer's lock (the process's end closes it)."""
    if path == "-":
        if os.isatty(0):
            raise ValueError(
                "standard input is a terminal: pipe raw PCM into it "
                "(ffmpeg -i SPEECH -f s16le -ac 1 -ar 16000 - | python -m keras_s2v.stream ...)"
            )
        pcm = os.fdopen(os.dup(0), "rb", buffering=0)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        return pcm, "standard input"
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder, not raw PCM")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or named pipe")
    return open(path, "rb", buffering=0), path


def _closed_pipe(frames) -> ValueError:
    """The reader of the frames went away: nothing more can go there (and Python's exit must not fail on it)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), frames.fileno())
    return ValueError("standard output: the program reading the frames closed it")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)

    def body():
        f = flags.FLAGS
        frames = _frames_output()
        pcm, name = _pcm_input(f.pcm)
        with frames:
            from keras_s2v import inference  # inside: Ctrl-C during TensorFlow's import is reported like any other

            model, note = presets.choose_model(f.model, f.backend, log=cli.progress_log(f.quiet))

            def ready(info):
                print(
                    f"ready: {info['width']}x{info['height']} rgb24 frames at {info['fps']:g} fps on standard "
                    f"output; reading 16 kHz mono s16le PCM from {name}; frame t goes out once the audio through "
                    f"frame t + {info['frames_ahead']} has arrived ({info['model']})",
                    file=sys.stderr,
                    flush=True,
                )

            def write(frame):
                try:
                    frames.write(frame.tobytes())
                    frames.flush()
                except BrokenPipeError:
                    raise _closed_pipe(frames) from None

            summary = inference.stream_photo(
                f.face,
                pcm,
                model,
                write,
                pcm_name=name,
                deblur=f.deblur,
                no_deblur=f.no_deblur,
                fps=f.fps,
                crop=f.crop,
                face_index=f.face_index,
                batch_size=f.batch_size,
                blend=f.blend,
                ready=ready,
            )
        lines = inference.format_stream_summary(summary)
        return lines if note is None else f"{lines}\n{note}"  # printed on standard error (see _frames_output)

    return cli.run_main(body, interrupted="interrupted: the frames written so far stay written")


if __name__ == "__main__":
    app.run(main)
