"""Temporal GAN models: shapes, config round trips, save/reload, streaming = whole sequence, pyramid pooling."""

import keras
import numpy as np
import pytest

from keras_s2v.layers.sequence import SpatialPyramidPooling1D
from keras_s2v.models import discriminators, temporal_gan

TINY = {"width": 0.125, "identity_dim": 8, "audio_dim": 16, "context_dim": 16, "noise_dim": 4}
VARIANTS = {
    "tgan": {"audio_input": "pcm"},
    "tgan_mfcc_spp": {"audio_input": "mfcc", "noise_layers": 2, "plain_convs": True},
}


def _inputs(audio_input, batch=2, steps=5, noise_dim=4, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "faces": rng.random((batch, 112, 112, 3), dtype=np.float32),
        "audio": (0.1 * rng.standard_normal((batch, steps, *temporal_gan.window_shape(audio_input)))).astype(
            np.float32
        ),
        "noise": rng.standard_normal((batch, steps, noise_dim)).astype(np.float32),
    }


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def generator(request):
    keras.utils.set_random_seed(0)
    return temporal_gan.TemporalGenerator(**VARIANTS[request.param], **TINY)


def test_generator_shapes_and_parts(generator):
    x = _inputs(generator.audio_input, steps=3)
    frames = np.asarray(generator(x))
    assert frames.shape == (2, 3, 112, 112, 3)
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    identity = generator.identity_encoder(x["faces"])
    assert list(identity) == ["identity", "skip_56", "skip_28", "skip_14", "skip_7"]
    assert identity["identity"].shape == (2, 8) and np.abs(np.asarray(identity["identity"])).max() <= 1.0
    transposed = [layer for layer in generator.decoder.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    plain = [layer for layer in generator.decoder.layers if type(layer) is keras.layers.Conv2D]
    # Vougioukas et al.: 5 transposed convolutions; the MFCC variant: 6 transposed and 4 plain.
    assert (len(transposed), len(plain)) == ((6, 4) if generator.plain_convs else (5, 0))


def test_sequence_length_is_free(generator):
    for steps in (1, 7):
        assert generator(_inputs(generator.audio_input, batch=1, steps=steps)).shape == (1, steps, 112, 112, 3)


def test_streaming_frame_by_frame_equals_the_whole_sequence(generator):
    x = _inputs(generator.audio_input, steps=6)
    whole = np.asarray(generator(x))
    step = generator.step_generator()
    identity = {k: np.asarray(v) for k, v in generator.identity_encoder(x["faces"]).items()}
    states = {k: np.zeros((2, *shape), np.float32) for k, shape in generator.state_shapes().items()}
    for t in range(6):
        out = step({**identity, "audio": x["audio"][:, t], "noise": x["noise"][:, t], **states})
        states = {k: np.asarray(out[k]) for k in states}
        np.testing.assert_allclose(np.asarray(out["frame"]), whole[:, t], atol=1e-5)


def test_audio_and_noise_move_the_frames(generator):
    x = _inputs(generator.audio_input, steps=4)
    base = np.asarray(generator(x))
    other_audio = np.asarray(generator({**x, "audio": 10.0 * x["audio"][::-1]}))
    other_noise = np.asarray(generator({**x, "noise": 3.0 * x["noise"]}))
    assert np.abs(base - other_audio).max() > 1e-5  # untrained: small, but the paths are wired
    assert np.abs(base - other_noise).max() > 1e-5


def test_config_round_trip_and_save_reload(generator, tmp_path):
    config = generator.get_config()
    assert temporal_gan.TemporalGenerator.from_config(config).get_config() == config
    path = tmp_path / "generator.keras"
    generator.save(path)
    reloaded = keras.saving.load_model(path)
    x = _inputs(generator.audio_input, steps=2)
    np.testing.assert_allclose(np.asarray(reloaded(x)), np.asarray(generator(x)), atol=1e-6)
    assert reloaded.step_generator() is not None


@pytest.mark.parametrize("style", discriminators.FRAME_STYLES)
def test_frame_discriminator(style):
    model = discriminators.FrameDiscriminator(width=0.125, style=style)
    frame = np.random.default_rng(0).random((3, 112, 112, 3), dtype=np.float32)
    assert model({"frame": frame, "still": frame}).shape == (3, 1)
    assert discriminators.FrameDiscriminator.from_config(model.get_config()).get_config() == model.get_config()


def test_pyramid_pooling_gives_a_fixed_size_for_any_length():
    layer = SpatialPyramidPooling1D((1, 2, 4))
    rng = np.random.default_rng(0)
    for steps in (1, 3, 8, 16, 75):
        x = rng.standard_normal((2, steps, 5)).astype(np.float32)
        pooled = np.asarray(layer(x))
        assert pooled.shape == (2, 5 * 7)
        np.testing.assert_allclose(pooled[:, :5], x.max(axis=1), rtol=1e-6)  # level 1: the whole sequence
    x = np.arange(8, dtype=np.float32).reshape(1, 8, 1)
    np.testing.assert_allclose(np.asarray(layer(x))[0], [7, 3, 7, 1, 3, 5, 7])  # bins of 8, 4 and 2 steps


@pytest.mark.parametrize("pooling", discriminators.SEQUENCE_POOLING)
def test_sequence_discriminator_takes_8_16_and_75_frames(pooling):
    model = discriminators.SequenceDiscriminator("mfcc", width=0.125, hidden_dim=8, pooling=pooling)
    rng = np.random.default_rng(0)
    sizes = set()
    for steps in (8, 16, 75):
        x = {
            "frames": rng.random((1, steps, 112, 112, 3), dtype=np.float32),
            "audio": rng.standard_normal((1, steps, 12, 35)).astype(np.float32),
        }
        assert model(x).shape == (1, 1)
        if pooling == "pyramid":
            features = keras.Model(model.input, model.get_layer("pyramid").output)(x)
            sizes.add(tuple(features.shape))
    if pooling == "pyramid":
        assert sizes == {(1, 8 * 7)}
    assert discriminators.SequenceDiscriminator.from_config(model.get_config()).get_config() == model.get_config()
