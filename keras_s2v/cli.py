"""What the command lines share: one way to report bad input, and the generate/redub model and output flags."""

from __future__ import annotations

import sys

from absl import flags, logging


def define_common_flags() -> None:
    flags.DEFINE_string("model", None, "Training workdir, export folder (SavedModel) or .tflite file.", required=True)
    flags.DEFINE_string("out", None, "Output video (.mp4); its folder must exist.", required=True)
    flags.DEFINE_string("deblur", None, "Deblur training workdir (default: <model workdir>/deblur when trained).")
    flags.DEFINE_bool("no_deblur", False, "Skip the deblurring CNN.")
    flags.DEFINE_bool("crop", False, "Write the aligned 112 x 112 face only, not the pasted-back frame.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing output.")
    flags.DEFINE_integer("batch_size", 25, "Audio windows per generator call.")
    flags.DEFINE_bool("quiet", False, "No progress bar.")
    flags.DEFINE_alias("no-deblur", "no_deblur")
    flags.DEFINE_alias("batch-size", "batch_size")


def run_main(body, extra_errors: tuple = ()) -> int:
    """Run ``body()`` -> the line to print; a bad input is one ``error:`` line on stderr and exit status 2.

    No traceback for what the user can fix (a missing or unreadable file, no
    face, an existing output); an interrupted run says so and exits 130.
    """
    from keras_s2v.data import media

    try:
        message = body()
    except (ValueError, FileNotFoundError, FileExistsError, media.MediaError, *extra_errors) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no output written", file=sys.stderr)
        return 130
    print(message)
    return 0


def run_command(command) -> int:
    """``run_main`` for generate and redub: ``command(FLAGS)`` -> summary, printed."""
    from keras_s2v import inference

    logging.set_verbosity(logging.WARNING)
    return run_main(lambda: inference.format_summary(command(flags.FLAGS)))
