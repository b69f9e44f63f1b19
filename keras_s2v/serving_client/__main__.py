"""``python -m keras_s2v.serving_client``: the TF Serving client as a command (the library is ``__init__.py``)."""

from __future__ import annotations

from keras_s2v import cli
from keras_s2v.serving_client import DEFAULT_TIMEOUT, GRPC_PORT, REST_PORT, ServingClient, ServingError, make_video


def _define_flags() -> None:
    """Flags of the command, defined only when it runs (importing the library defines none)."""
    from absl import flags

    flags.DEFINE_string("host", "localhost", "Model server host (or a base URL for REST).")
    flags.DEFINE_string("model", "s2v_small", "Model name on the server (MODEL_NAME of the container).")
    flags.DEFINE_integer("model_version", None, "Model version (default: the latest the server loaded).")
    flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "REST (JSON) or gRPC (binary tensors).")
    flags.DEFINE_integer("rest_port", REST_PORT, "TF Serving's REST port (--rest_api_port).")
    flags.DEFINE_integer("grpc_port", GRPC_PORT, "TF Serving's gRPC port (--port).")
    flags.DEFINE_multi_string(
        "face",
        [],
        "Aligned square face crop (repeat 5 times for a 5-image model; a "
        "masked-target model also takes the first as the frame being made).",
    )
    flags.DEFINE_string("audio", None, "Speech recording (wav, mp3, m4a, ...).", required=True)
    flags.DEFINE_string("out", None, "Output video (.mp4).", required=True)
    flags.DEFINE_integer("batch_size", 25, "Audio windows (video frames) per request.", lower_bound=1)
    flags.DEFINE_float("fps", 25.0, "Output frame rate.")
    flags.DEFINE_float("timeout", DEFAULT_TIMEOUT, "Seconds to wait for each answer.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing output.")
    cli.check_flags("fps", above=0, at_most=120)
    cli.check_flags("timeout", above=0)
    cli.check_flags("rest_port", "grpc_port", at_least=1, below=65536)
    cli.check_flags("model_version", at_least=1)


def main(argv):
    del argv
    from absl import flags

    f = flags.FLAGS

    def body():
        if not f.face:
            raise ValueError("give the aligned face crop with --face IMAGE")
        client = ServingClient(f.host, f.model, f.model_version, f.protocol, f.rest_port, f.grpc_port, f.timeout)
        with client:
            count, seconds = make_video(client, f.face, f.audio, f.out, f.batch_size, f.fps, f.overwrite)
        return f"wrote {f.out}: {count} frames at {f.fps:g} fps, {seconds:.2f} s of audio, from {client.target}"

    return cli.run_main(body, (TypeError, ServingError))


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
