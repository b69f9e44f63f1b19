"""Re-dub a video with new speech: the face's lower half regenerated in sync, everything else kept.

    python -m keras_s2v.redub --video VIDEO --audio SPEECH --model MODEL --out OUT.mp4 [--audio_fit loop|trim|pad]
        [--blend pyramid|poisson] [--backend auto|keras|tflite_int8|tflite_float16]

MODEL is a training workdir, an export folder (SavedModel), a .tflite file or a preset
name; a preset runs on its int8 TFLite model when that passes its parity check against
Keras (built once into the preset cache), else on Keras (--backend chooses).
Identity stills are sampled from the video itself (spread in time); the face
is followed from frame to frame (landmarks refitted, detected again every 10
frames or when lost, the alignment smoothed; --notrack_faces detects it on
every frame), each generated face is aligned to its frame and
blended over the lower face (--blend: pyramid, the default, or poisson, the
slower cv2.seamlessClone). The output keeps the video's resolution
and frame rate. Frames with no face pass through unchanged and are counted.
--audio_fit: loop (default: as long as the audio, the video starts over),
trim (the shorter of the two) or pad (as long as the video, silence after
the speech).
"""

from __future__ import annotations

from absl import app, flags

from export import presets
from keras_s2v import cli, paste

_VIDEO = flags.DEFINE_string("video", None, "Video whose face is re-dubbed.", required=True)
_AUDIO = flags.DEFINE_string("audio", None, "New speech (wav, mp3, m4a, ...).", required=True)
_AUDIO_FIT = flags.DEFINE_enum(
    "audio_fit",
    "loop",
    ["loop", "trim", "pad"],
    "When audio and video lengths differ: loop the video, trim to the shorter, or pad the audio with silence.",
)
flags.DEFINE_alias("audio-fit", "audio_fit")
cli.define_common_flags()
_BLEND = flags.DEFINE_enum("blend", paste.DEFAULT_BLEND, paste.BLENDS, paste.BLEND_HELP)
_BACKEND = flags.DEFINE_enum("backend", presets.DEFAULT_BACKEND, presets.BACKENDS, presets.BACKEND_HELP)
_TRACK_FACES = flags.DEFINE_bool(
    "track_faces",
    True,
    "Follow the face from frame to frame (landmarks refitted, detected again every 10 frames or when lost, "
    "smoothed so the mouth does not jitter); --notrack_faces detects it on every frame.",
)
flags.DEFINE_alias("track-faces", "track_faces")


def main(argv):
    del argv

    def command(f):
        from keras_s2v import inference  # inside: Ctrl-C during TensorFlow's import is reported like any other

        # The output is refused before a preset's TFLite form is built (minutes, once), not after.
        inference.check_output(f.out, f.overwrite, [("--video", f.video), ("--audio", f.audio), ("--model", f.model)])
        model, note = presets.choose_model(f.model, f.backend, log=cli.progress_log(f.quiet))
        summary = inference.format_summary(
            inference.redub_video(
                f.video,
                f.audio,
                model,
                f.out,
                audio_fit=f.audio_fit,
                deblur=f.deblur,
                no_deblur=f.no_deblur,
                crop=f.crop,
                overwrite=f.overwrite,
                batch_size=f.batch_size,
                progress=not f.quiet,
                blend=f.blend,
                track_faces=f.track_faces,
            )
        )
        return summary if note is None else f"{summary}\n{note}"

    return cli.run_command(command)


if __name__ == "__main__":
    app.run(main)
