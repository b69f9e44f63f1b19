"""What the command lines share: one way to report bad input, and the generate/redub model and output flags."""

from __future__ import annotations

import math
import re
import signal
import sys

from absl import flags, logging


def check_flags(*names: str, at_least=None, above=None, below=None, at_most=None) -> None:
    """Refuse at parse time, naming the flag, a value that is not a finite number in range (``--fps nan``).

    ``at_least``/``above``/``below``/``at_most`` bound the value; an unset optional flag (None) passes.
    """

    def valid(value) -> bool:
        if value is None:
            return True
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return (
            (at_least is None or value >= at_least)
            and (above is None or value > above)
            and (below is None or value < below)
            and (at_most is None or value <= at_most)
        )

    bounds = [
        f">= {at_least}" if at_least is not None else "",
        f"> {above}" if above is not None else "",
        f"< {below}" if below is not None else "",
        f"<= {at_most}" if at_most is not None else "",
    ]
    message = "must be a finite number " + " and ".join(b for b in bounds if b)
    for name in names:
        flags.register_validator(name, valid, message=message)


def check_pattern(name: str) -> None:
    """Refuse at parse time a flag that is not a valid regular expression, with re's reason."""

    def valid(value) -> bool:
        if value is None:
            return True
        try:
            re.compile(value)
        except re.error as error:
            raise flags.ValidationError(f"not a valid regular expression ({error})") from None
        return True

    flags.register_validator(name, valid)


def define_common_flags() -> None:
    flags.DEFINE_string("model", None, "Training workdir, export folder (SavedModel) or .tflite file.", required=True)
    flags.DEFINE_string("out", None, "Output video (.mp4); its folder must exist.", required=True)
    flags.DEFINE_string("deblur", None, "Deblur training workdir (default: <model workdir>/deblur when trained).")
    flags.DEFINE_bool("no_deblur", False, "Skip the deblurring CNN.")
    flags.DEFINE_bool("crop", False, "Write the aligned 112 x 112 face only, not the pasted-back frame.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing output.")
    flags.DEFINE_integer("batch_size", 25, "Audio windows per generator call.")
    flags.DEFINE_bool("quiet", False, "No progress bar.")
    check_flags("batch_size", at_least=1)
    flags.DEFINE_alias("no-deblur", "no_deblur")
    flags.DEFINE_alias("batch-size", "batch_size")


class Terminated(KeyboardInterrupt):
    """SIGTERM (a container or job scheduler stopping the run): cleaned up like Ctrl-C."""


def _terminate(signum, frame):
    raise Terminated()


def run_main(body, extra_errors: tuple = (), interrupted: str = "interrupted: no output written") -> int:
    """Run ``body()`` -> the line to print; a bad input is one ``error:`` line on stderr and exit status 2.

    No traceback for what the user can fix (a missing or unreadable file, no
    face, an existing output). Ctrl-C and SIGTERM, also during the imports that
    ``body`` makes, unwind the same way (temporary files removed), say so and
    exit 130 and 143; ``interrupted`` is what they print.
    """
    signal.signal(signal.SIGTERM, _terminate)
    try:
        from keras_s2v.data import media

        errors = (ValueError, FileNotFoundError, FileExistsError, media.MediaError, *extra_errors)
        try:
            message = body()
        except errors as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    except KeyboardInterrupt as interrupt:
        print(interrupted, file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) else 130
    print(message)
    return 0


def progress_log(quiet: bool):
    """What a command says while it works (one line each, on stderr, as the progress bar): nothing when ``quiet``."""
    if quiet:
        return lambda _: None
    return lambda line: print(line, file=sys.stderr, flush=True)


def run_command(command) -> int:
    """``run_main`` for generate and redub: ``command(FLAGS)`` -> the summary line, printed."""
    logging.set_verbosity(logging.WARNING)
    return run_main(lambda: command(flags.FLAGS))
