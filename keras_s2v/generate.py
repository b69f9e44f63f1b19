"""Make a talking-face video from a photo (or five) and a speech recording.

    python -m keras_s2v.generate --face PHOTO [--face PHOTO ...] --audio SPEECH --model WORKDIR --out OUT.mp4

Writes the aligned, generated face with the audio muxed. Any audio ffmpeg
reads is resampled to 16 kHz mono. An existing output is kept unless
--overwrite; an interrupted run leaves no partial file under OUT.
"""

from __future__ import annotations

import sys

from absl import app, flags

_FACE = flags.DEFINE_multi_string("face", [], "Photo of the face (repeat 5 times for a 5-image model).")
_AUDIO = flags.DEFINE_string("audio", None, "Speech recording (wav, mp3, m4a, ...).", required=True)
_MODEL = flags.DEFINE_string("model", None, "Training workdir holding model.keras.", required=True)
_DEBLUR = flags.DEFINE_string("deblur", None, "Workdir of a trained deblur experiment to sharpen frames.")
_OUT = flags.DEFINE_string("out", None, "Output video (.mp4).", required=True)
_FPS = flags.DEFINE_float("fps", 25.0, "Output frame rate.")
_FACE_INDEX = flags.DEFINE_integer("face_index", None, "Which face, counted from the left (default: the largest).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing output.")


def main(argv):
    del argv
    from keras_s2v import inference
    from keras_s2v.data import media
    from keras_s2v.training import train_lib

    try:
        if not _FACE.value:
            raise ValueError("give the face photo with --face PHOTO")
        model = train_lib.load_trained_model(_MODEL.value)
        deblur = train_lib.load_trained_model(_DEBLUR.value) if _DEBLUR.value else None
        crops = [inference.align_photo(path, face_index=_FACE_INDEX.value)[0] for path in _FACE.value]
        faces = inference.identity_faces(crops, model.num_identity_images)
        waveform = media.read_audio(_AUDIO.value)
        frames = inference.generate_frames(model, faces, waveform, deblur, fps=_FPS.value)
        count = inference.write_video(frames, _OUT.value, waveform, crops[0].shape[0], _FPS.value, _OVERWRITE.value)
    except (ValueError, FileNotFoundError, FileExistsError, media.MediaError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {_OUT.value}: {count} frames at {_FPS.value:g} fps, {len(waveform) / 16000:.2f} s of audio")
    return 0


if __name__ == "__main__":
    app.run(main)
