"""tf.data input pipelines over the prepared shards.

Speech2Vid samples: for a target frame t of a face-track segment, the input
is the MFCC window centred on t (``audio.mfcc_window_slice``) and 1 or 5
identity frames drawn from the same track far from t in time (the paper's
Fig. 7: a still close to the target leaks its mouth shape); the label is
frame t. Deblur samples: an aligned frame blurred artificially -> the frame.

Decoding (bytes -> tensors) lives in ``features.decode_example``; this module
only parses examples into training samples. Everything random draws from
stateless ops keyed by ``seed``, so a run is repeatable.
"""

from __future__ import annotations

import os

import numpy as np

from keras_s2v.data import audio as audio_lib
from keras_s2v.data import features, prepared


def _tf():
    import tensorflow as tf

    return tf


def data_dirs(data_dir) -> list[str]:
    """One shard folder, or several joined by commas (e.g. a synthetic and a real corpus)."""
    if isinstance(data_dir, (list, tuple)):
        return [str(d) for d in data_dir]
    return [d for d in str(data_dir).split(",") if d]


def shard_files(data_dir, split: str, shard: tuple[int, int] | None = None) -> list[str]:
    """The ``split`` shards of every folder in ``data_dir`` (comma-separated folders allowed).

    ``shard``: ``(index, count)``, the files of input pipeline ``index`` of ``count`` (one worker's under
    ``data.shard_by=file``): every ``count``-th file from the ``index``-th. A ValueError when there are
    fewer files than pipelines, or a pipeline's files are all empty: that worker would have nothing to
    read while the others wait for it in every step.
    """
    files = [f for folder in data_dirs(data_dir) for f in features.list_shards(folder, split)]
    if not files:
        patterns = ", ".join(features.shard_pattern(d, split) for d in data_dirs(data_dir))
        raise FileNotFoundError(f"{data_dir}: no {split} shards ({patterns})")
    if shard is None:
        return files
    index, count = shard
    if len(files) < count:
        raise ValueError(
            f"{data_dir}: {len(files)} {split} shard file(s) for {count} workers, and data.shard_by=file gives "
            f"every worker files of its own: train with data.shard_by=data (every worker reads every file), or "
            f"re-run prepare on the same --out with a --shard_size_mb that makes at least {count} shards "
            "(it re-packs the prepared clips)"
        )
    own = files[index::count]
    if not any(os.path.getsize(f) for f in own):
        raise ValueError(
            f"{data_dir}: worker {index}'s {split} shard file(s) under data.shard_by=file are empty "
            f"({', '.join(own)}): fewer examples than shards; use data.shard_by=data or fewer, larger shards"
        )
    return own


def shard_seed(seed: int, shard: tuple[int, int] | None) -> int:
    """``seed`` for input pipeline ``shard`` = ``(index, count)``: folded with the index when there are several,
    so that the workers of ``data.shard_by=file`` draw their own frames and augmentations; else ``seed``."""
    if shard is None or shard[1] == 1:
        return seed
    return int(np.random.SeedSequence([seed, shard[0]]).generate_state(1)[0])


def _segments(data_dir, split: str, training: bool, seed: int, cache: str = "", shard=None):
    """(example with JPEG frames undecoded, stateless seed) pairs.

    Training: shard order shuffled, shards interleaved, repeated forever.
    Evaluation: every segment once, in order.

    ``shard``: ``(index, count)``: only that input pipeline's files (``shard_files``), keys drawn
    from ``shard_seed`` and a cache file of its own: one worker's segments under ``data.shard_by=file``.

    ``cache``: "" (none), ``"memory"`` or a file path prefix: the parsed segments, their frames
    still JPEG, are kept after the first pass (``tf.data.Dataset.cache``) and later passes read
    them from there instead of the shards. Later passes then see the segments in the first pass's
    order (the samples' shuffle buffer still mixes them) and draw new frames from them (the keys
    are drawn after the cache). Decoding and augmenting, most of the input's work, still run
    every pass. A file cache, once whole, is what every later run naming it reads instead of the
    shards: delete it when they change.
    """
    tf = _tf()
    files = shard_files(data_dir, split, shard)
    seed = shard_seed(seed, shard)
    if shard and shard[1] > 1 and cache not in ("", "memory"):
        cache = f"{cache}_shard{shard[0]}of{shard[1]}"  # other files than the other workers' caches
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if training:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(4, len(files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    dataset = dataset.map(
        lambda s: features.decode_example(s, decode_frames=False), num_parallel_calls=tf.data.AUTOTUNE
    )
    if cache:
        dataset = dataset.cache("" if cache == "memory" else cache)
    if training:
        dataset = dataset.repeat()
    keys = tf.data.Dataset.random(seed=seed).batch(2).map(lambda k: tf.cast(k, tf.int64))
    return tf.data.Dataset.zip((dataset, keys))


def _samples(segments, draws, parallel: int = 1):
    """``draws(example, key)`` -> a segment's samples, for every segment: where the JPEG frames are decoded.

    ``parallel`` 1: one segment after another (``flat_map``), in one thread, which bounds the whole
    pipeline at 1.4 to 2.9 times one core's rate (``benchmarks/input_pipeline_bench.py``). More: that many segments'
    draws at once in parallel threads (``Dataset.interleave``), their samples taken in turn, always
    in the same order (but another order than one by one: other batches, so other training runs).
    """
    if parallel <= 1:
        return segments.flat_map(draws)
    return segments.interleave(draws, cycle_length=parallel, num_parallel_calls=_tf().data.AUTOTUNE, deterministic=True)


def _frame_picks(num_frames, count: int, key, training: bool):
    """``count`` frame indices: uniform random when training, evenly spaced otherwise."""
    tf = _tf()
    if training:
        return tf.random.stateless_uniform([count], key, 0, num_frames, tf.int32)
    return tf.cast(tf.linspace(0.0, tf.cast(num_frames - 1, tf.float32), count), tf.int32)


def _decode_frames(jpegs, indices):
    tf = _tf()
    images = tf.map_fn(
        lambda i: tf.io.decode_jpeg(tf.gather(jpegs, i), channels=3),
        indices,
        fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
    )
    return tf.cast(images, tf.float32) / 255.0


def _identity_indices(seed, num_frames, target, count: int, min_gap: float):
    """``count`` frame indices at least ``min_gap`` of the segment away from ``target``."""
    tf = _tf()
    frames = tf.range(num_frames)
    gap = tf.maximum(1, tf.cast(tf.cast(num_frames, tf.float32) * min_gap, tf.int32))
    far = tf.abs(frames - target) >= gap
    # Short segments may have no frame that far: then take the farthest ones.
    far = tf.cond(
        tf.reduce_any(far), lambda: far, lambda: tf.abs(frames - target) >= tf.reduce_max(tf.abs(frames - target))
    )
    logits = tf.where(far, 0.0, -1e9)[None, :]
    return tf.cast(tf.random.stateless_categorical(logits, count, seed)[0], tf.int32)


def _speech2vid_sample(example, target, identity, num_images: int, masked_target: bool = False):
    tf = _tf()
    start = target * audio_lib.HOPS_PER_FRAME
    mfcc = example["mfcc"][:, start : start + audio_lib.MFCC_WINDOW_HOPS]  # (12, 35)
    frames = _decode_frames(example["frames"], tf.concat([identity, [target]], 0))  # (n + 1, S, S, 3)
    faces = frames[::-1] if masked_target else frames[:num_images]  # the target first, the model masks its lower half
    faces = tf.concat(tf.unstack(faces, num=num_images + masked_target), axis=-1)  # (S, S, 3 n) or (S, S, 3 (n + 1))
    return {"faces": faces, "mfcc": mfcc}, frames[num_images]


def speech2vid_dataset(
    data_dir,
    split: str,
    batch_size: int,
    num_identity_images: int = 1,
    samples_per_segment: int = 16,
    min_identity_gap: float = 0.5,
    training: bool = True,
    shuffle_buffer: int = 1024,
    augment: bool = True,
    seed: int = 0,
    masked_target: bool = False,
    cache: str = "",
    parallel_segments: int = 1,
    shard: tuple[int, int] | None = None,
):
    """Batches of ``({"faces": (B,S,S,3n), "mfcc": (B,12,35)}, frame (B,S,S,3))``.

    ``masked_target``: faces are (B,S,S,3(n+1)), the target frame itself first
    (``Speech2Vid(masked_target=True)`` hides its lower half).

    Training: shuffled, repeated, random targets and identity frames,
    augmented. Evaluation: the same evenly spaced targets every time and the
    identity frame(s) half a segment away, no augmentation, one pass.
    ``cache`` and ``shard``: ``_segments``'; ``parallel_segments`` (training): ``_samples``' ``parallel``.
    """
    tf = _tf()
    dataset = _segments(data_dir, split, training, seed, cache, shard)
    if training:

        def draws(example, key):
            n = tf.cast(example["num_frames"], tf.int32)
            keys = tf.random.experimental.stateless_split(key, samples_per_segment + 1)
            targets = _frame_picks(n, samples_per_segment, keys[0], training)
            samples = tf.data.Dataset.from_tensor_slices((targets, keys[1:]))
            return samples.map(
                lambda t, k: _speech2vid_sample(
                    example,
                    t,
                    _identity_indices(k, n, t, num_identity_images, min_identity_gap),
                    num_identity_images,
                    masked_target,
                )
            )

        dataset = _samples(dataset, draws, parallel_segments).shuffle(shuffle_buffer, seed=seed)
    else:

        def fixed(example, key):
            n = tf.cast(example["num_frames"], tf.int32)
            targets = _frame_picks(n, samples_per_segment, key, training)
            identity = tf.tile(((targets + n // 2) % n)[:, None], [1, num_identity_images])
            identity += tf.range(num_identity_images)[None, :] * tf.maximum(1, n // (4 * num_identity_images))
            identity %= n
            samples = tf.data.Dataset.from_tensor_slices((targets, identity))
            return samples.map(lambda t, ids: _speech2vid_sample(example, t, ids, num_identity_images, masked_target))

        dataset = dataset.flat_map(fixed)
    dataset = dataset.batch(batch_size, drop_remainder=training)
    if training and augment:
        dataset = dataset.map(joint_augmenter(shard_seed(seed, shard)), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def joint_augmenter(seed: int):
    """Flip, brightness and contrast applied identically to identity faces and target.

    Built from keras.layers; the faces and the target are stacked on channels
    so one draw transforms both the same way.
    """
    import keras

    augment = keras.layers.Pipeline(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomBrightness(0.1, value_range=(0.0, 1.0), seed=seed + 1),
            keras.layers.RandomContrast(0.1, seed=seed + 2),
        ],
        name="joint_augment",
    )

    def apply(inputs, target):
        tf = _tf()
        stacked = tf.concat([inputs["faces"], target], axis=-1)
        stacked = tf.clip_by_value(augment(stacked, training=True), 0.0, 1.0)
        channels = inputs["faces"].shape[-1]
        return {**inputs, "faces": stacked[..., :channels]}, stacked[..., channels:]

    return apply


# --- Sequences (temporal GAN) -----------------------------------------------------------------


def sequence_lengths(text) -> list[int]:
    """``"8,16,24"`` -> [8, 16, 24]: the bucket lengths of sequence training."""
    lengths = [int(v) for v in str(text).split(",") if v.strip()]
    if not lengths or min(lengths) < 1:
        raise ValueError(f"sequence lengths must be positive integers, got {text!r}")
    return lengths


def _audio_windows(example, first, length: int, audio_input: str):
    """(length, *window) audio of frames first..first+length-1: raw 0.16 s windows, 12 x 35 MFCC or 4 x 128 log-mel."""
    tf = _tf()
    frames = first + tf.range(length)
    if audio_input == "log_mel":
        return tf.gather(example["log_mel"], frames)  # (L, 4, 128)
    if audio_input == "mfcc":
        columns = frames[:, None] * audio_lib.HOPS_PER_FRAME + tf.range(audio_lib.MFCC_WINDOW_HOPS)[None, :]
        return tf.transpose(tf.gather(example["mfcc"], columns, axis=1), [1, 0, 2])  # (L, 12, 35)
    samples = audio_lib.WAVE_WINDOW_SAMPLES
    starts = audio_lib.segment_window_start(frames, samples)
    return tf.gather(example["pcm"], starts[:, None] + tf.range(samples)[None, :])  # (L, 2560)


def _sequence_sample(example, first, still, length: int, audio_input: str):
    frames = _decode_frames(example["frames"], first + _tf().range(length))  # (L, S, S, 3)
    still_frame = _decode_frames(example["frames"], still[None])[0]
    return {"faces": still_frame, "audio": _audio_windows(example, first, length, audio_input)}, frames


def sequence_dataset(
    data_dir,
    split: str,
    batch_size: int,
    lengths=(16,),
    audio_input: str = "pcm",
    samples_per_segment: int = 4,
    min_identity_gap: float = 0.5,
    training: bool = True,
    shuffle_buffer: int = 256,
    augment: bool = True,
    seed: int = 0,
    cache: str = "",
    parallel_segments: int = 1,
    shard: tuple[int, int] | None = None,
):
    """Batches of ``({"faces": (B,S,S,3), "audio": (B,L,*window)}, frames (B,L,S,S,3))``.

    A sample is ``L`` consecutive frames of a segment, their audio windows
    (``audio_input``: the 0.16 s raw window or the 12 x 35 MFCC of each
    frame) and one still of the same track far from the window's centre.
    Several ``lengths``: every batch holds one length, drawn at random per
    batch (bucketing; what the pyramid-pooling sequence discriminator is for).
    Evaluation: the first length, evenly spaced windows, stills half a
    segment away, one pass. Segments shorter than a length are skipped. ``cache``: ``_segments``'
    (one per length: a file path gets ``_1``, ``_2`` ... after the first length's); ``shard``: ``_segments``'
    (the length drawn per batch is not: every worker's batches of a step have one shape);
    ``parallel_segments`` (training): ``_samples``' ``parallel``.
    """
    tf = _tf()
    lengths = list(lengths)
    if not training:
        lengths = lengths[:1]

    def one_length(length: int, index: int):
        own = cache if cache in ("", "memory") or index == 0 else f"{cache}_{index}"
        dataset = _segments(data_dir, split, training, seed + 7919 * index, own, shard)
        dataset = dataset.filter(lambda example, key: example["num_frames"] >= length)

        def draws(example, key):
            n = tf.cast(example["num_frames"], tf.int32)
            keys = tf.random.experimental.stateless_split(key, samples_per_segment + 1)
            firsts = _frame_picks(n - length + 1, samples_per_segment, keys[0], training)
            if training:
                stills = tf.stack(
                    [
                        _identity_indices(keys[i + 1], n, firsts[i] + length // 2, 1, min_identity_gap)[0]
                        for i in range(samples_per_segment)
                    ]
                )
            else:
                stills = (firsts + length // 2 + n // 2) % n
            samples = tf.data.Dataset.from_tensor_slices((firsts, stills))
            return samples.map(lambda first, still: _sequence_sample(example, first, still, length, audio_input))

        dataset = _samples(dataset, draws, parallel_segments if training else 1)
        if training:
            dataset = dataset.shuffle(shuffle_buffer, seed=seed + index)
        return dataset.batch(batch_size, drop_remainder=training)

    if len(lengths) == 1:
        dataset = one_length(lengths[0], 0)
    else:
        buckets = [one_length(length, i) for i, length in enumerate(lengths)]
        choice = tf.data.Dataset.random(seed=seed).map(lambda r: tf.cast(r % len(lengths), tf.int64))
        dataset = tf.data.Dataset.choose_from_datasets(buckets, choice)
    if training and augment:
        dataset = dataset.map(sequence_augmenter(shard_seed(seed, shard)), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def sequence_augmenter(seed: int):
    """``joint_augmenter`` on a sequence: the still and every frame flipped and jittered alike."""
    tf = _tf()
    augment = joint_augmenter(seed)

    def apply(inputs, frames):
        shape = tf.shape(frames)  # (B, L, S, S, 3) -> (B, S, S, 3 L) and back
        stacked = tf.reshape(tf.transpose(frames, [0, 2, 3, 1, 4]), [shape[0], shape[2], shape[3], -1])
        inputs, stacked = augment(inputs, stacked)
        frames = tf.transpose(tf.reshape(stacked, [shape[0], shape[2], shape[3], shape[1], 3]), [0, 3, 1, 2, 4])
        return inputs, frames

    return apply


# --- Lips at a glance -------------------------------------------------------------------------


def glance_dataset(
    data_dir,
    split: str,
    batch_size: int,
    frames: int = audio_lib.GLANCE_FRAMES,
    samples_per_segment: int = 4,
    min_identity_gap: float = 0.5,
    training: bool = True,
    shuffle_buffer: int = 256,
    augment: bool = True,
    seed: int = 0,
    cache: str = "",
    parallel_segments: int = 1,
    shard: tuple[int, int] | None = None,
):
    """Batches of ``({"lips": (B, 64, 64, 3), "log_mel": (B, 4 frames, 128)}, lip clips (B, frames, 64, 64, 3))``.

    ``sequence_dataset``'s windows (one still of the same track far from the
    window, the faces flipped and jittered together) with every face cut to
    its lip box (``align.lip_crops``) and the window's log-mel rows concatenated.
    """
    from keras_s2v.data.face.align import lip_crops

    tf = _tf()
    face_size = prepared.data_parameters(data_dirs(data_dir))["crop_size"]
    dataset = sequence_dataset(
        data_dir,
        split,
        batch_size,
        (frames,),
        "log_mel",
        samples_per_segment,
        min_identity_gap,
        training,
        shuffle_buffer,
        augment,
        seed,
        cache,
        parallel_segments,
        shard,
    )

    def to_lips(inputs, clip):
        log_mel = tf.reshape(inputs["audio"], [-1, frames * audio_lib.HOPS_PER_FRAME, audio_lib.LOG_MEL_BANDS])
        return (
            {"lips": lip_crops(inputs["faces"], face_size=face_size), "log_mel": log_mel},
            lip_crops(clip, face_size=face_size),
        )

    return dataset.map(to_lips, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


# --- Sync expert ------------------------------------------------------------------------------


def lips(frames, crop: str = "lower_half", face_size: int | None = None):
    """(..., S, S, 3) RGB in [0, 1] -> (..., H, W) grey ``crop`` (``align.sync_region``): what the sync expert sees.

    ``face_size``: S, where the frames' static shape does not say it (decoded JPEGs).
    """
    from keras_s2v.data.face.align import sync_region

    tf = _tf()
    top, left, height, width = sync_region(face_size or int(frames.shape[-2]), crop)
    grey = tf.image.rgb_to_grayscale(frames)[..., 0]
    return grey[..., top : top + height, left : left + width]


def _syncnet_sample(example, t, max_shift: int, crop: str = "lower_half", face_size: int = 112):
    """Lower faces (or mouths) of frames t-2..t+2 and the MFCC at every shift -K..K; label K (in sync)."""
    tf = _tf()
    half = audio_lib.SYNC_FRAMES // 2
    frames = _decode_frames(example["frames"], tf.range(t - half, t + half + 1))  # (5, S, S, 3)
    window = tf.transpose(lips(frames, crop, face_size), [1, 2, 0])  # (H, W, 5)
    shifts = tf.range(-max_shift, max_shift + 1)
    starts = audio_lib.sync_mfcc_slice(t + shifts)[0]  # (2K+1,)
    columns = starts[:, None] + tf.range(audio_lib.SYNC_MFCC_HOPS)[None, :]
    mfcc = tf.transpose(tf.gather(example["mfcc"], columns, axis=1), [1, 0, 2])  # (2K+1, 12, 20)
    return {"lips": window, "mfcc": mfcc}, tf.constant(max_shift, tf.int32)


def syncnet_dataset(
    data_dir,
    split: str,
    batch_size: int,
    max_shift: int = 5,
    samples_per_segment: int = 16,
    training: bool = True,
    shuffle_buffer: int = 1024,
    augment: bool = True,
    seed: int = 0,
    crop: str = "lower_half",
    geometry: float = 0.0,
    cache: str = "",
    parallel_segments: int = 1,
    shard: tuple[int, int] | None = None,
):
    """Batches of ``({"lips": (B, H, W, 5), "mfcc": (B, 2K+1, 12, 20)}, in-sync index (B,) = K)``.

    ``crop``: ``syncnet.sync_region``; ``geometry``: with ``augment``, random shifts and zooms of up
    to this fraction of the crop, the same over a window's 5 frames.

    Centre frames are drawn where every shifted audio window lies inside the
    segment's own MFCC, so a shifted window is real speech, never padding;
    segments shorter than ``2 K + 5`` frames are skipped. ``cache`` and ``shard``: ``_segments``';
    ``parallel_segments`` (training): ``_samples``' ``parallel``.
    """
    tf = _tf()
    half = audio_lib.SYNC_FRAMES // 2
    face_size = prepared.data_parameters(data_dirs(data_dir))["crop_size"]
    dataset = _segments(data_dir, split, training, seed, cache, shard)
    dataset = dataset.filter(lambda example, key: example["num_frames"] >= 2 * (max_shift + half) + 1)

    def draws(example, key):
        n = tf.cast(example["num_frames"], tf.int32)
        span = n - 2 * (max_shift + half)  # valid centres: [K + 2, n - K - 2)
        picks = _frame_picks(span, samples_per_segment, key, training) + max_shift + half
        return tf.data.Dataset.from_tensor_slices(picks).map(
            lambda t: _syncnet_sample(example, t, max_shift, crop, face_size)
        )

    dataset = _samples(dataset, draws, parallel_segments if training else 1)
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    dataset = dataset.batch(batch_size, drop_remainder=training)
    if training and augment:
        flip = lips_augmenter(shard_seed(seed, shard), geometry)
        dataset = dataset.map(
            lambda x, y: ({"lips": flip(x["lips"]), "mfcc": x["mfcc"]}, y), num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def lips_augmenter(seed: int, geometry: float = 0.0):
    """Mirror, brightness/contrast jitter and (``geometry`` > 0) shifts and zooms of the lips, the same over
    a window's 5 frames (they are its channels): alignment differs by a few pixels between corpora."""
    import keras

    layers = [
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomBrightness(0.15, value_range=(0.0, 1.0), seed=seed + 1),
        keras.layers.RandomContrast(0.2, seed=seed + 2),
    ]
    if geometry:
        layers += [
            keras.layers.RandomTranslation(geometry, geometry, fill_mode="reflect", seed=seed + 3),
            keras.layers.RandomZoom(geometry, fill_mode="reflect", seed=seed + 4),
        ]
    augment = keras.layers.Pipeline(layers, name="lips_augment")
    return lambda x: _tf().clip_by_value(augment(x, training=True), 0.0, 1.0)


# --- Deblurring --------------------------------------------------------------------------------

BLUR_KERNEL = 15


def blur_kernel(seed, max_sigma: float, max_motion: int):
    """A random (15, 15) blur kernel: Gaussian or linear motion, random strength and angle."""
    tf = _tf()
    keys = tf.random.experimental.stateless_split(seed, 4)
    r = BLUR_KERNEL // 2
    y, x = tf.meshgrid(tf.range(-r, r + 1, dtype=tf.float32), tf.range(-r, r + 1, dtype=tf.float32), indexing="ij")
    sigma = tf.random.stateless_uniform([], keys[0], 0.5, max_sigma)
    gaussian = tf.exp(-(x**2 + y**2) / (2 * sigma**2))
    length = tf.random.stateless_uniform([], keys[1], 3.0, float(max(3, max_motion)))
    angle = tf.random.stateless_uniform([], keys[2], 0.0, np.pi)
    dx, dy = tf.cos(angle), tf.sin(angle)
    along = tf.clip_by_value(x * dx + y * dy, -length / 2, length / 2)
    distance = tf.sqrt((x - along * dx) ** 2 + (y - along * dy) ** 2)
    motion = tf.nn.relu(1.0 - distance)
    use_motion = tf.random.stateless_uniform([], keys[3]) < 0.5
    kernel = tf.where(use_motion, motion, gaussian)
    return kernel / tf.reduce_sum(kernel)


def blur(image, kernel):
    """Blur a (S, S, 3) image with a (k, k) kernel, edges replicated."""
    tf = _tf()
    r = BLUR_KERNEL // 2
    padded = tf.pad(image[None], [[0, 0], [r, r], [r, r], [0, 0]], mode="SYMMETRIC")
    weights = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    return tf.nn.depthwise_conv2d(padded, weights, [1, 1, 1, 1], "VALID")[0]


def deblur_dataset(
    data_dir,
    split: str,
    batch_size: int,
    samples_per_segment: int = 16,
    training: bool = True,
    shuffle_buffer: int = 1024,
    max_sigma: float = 3.0,
    max_motion: int = 9,
    seed: int = 0,
    cache: str = "",
    parallel_segments: int = 1,
    shard: tuple[int, int] | None = None,
):
    """Batches of (blurred frame, sharp frame), both (B, S, S, 3) in [0, 1]. ``cache`` and ``shard``:
    ``_segments``'; ``parallel_segments`` (training): ``_samples``' ``parallel``."""
    tf = _tf()
    dataset = _segments(data_dir, split, training, seed, cache, shard)

    def frames(example, key):
        n = tf.cast(example["num_frames"], tf.int32)
        keys = tf.random.experimental.stateless_split(key, samples_per_segment + 1)
        sharp = _decode_frames(example["frames"], _frame_picks(n, samples_per_segment, keys[0], training))
        return tf.data.Dataset.from_tensor_slices((sharp, keys[1:]))

    def degrade(sharp, key):
        return tf.clip_by_value(blur(sharp, blur_kernel(key, max_sigma, max_motion)), 0.0, 1.0), sharp

    dataset = _samples(dataset, frames, parallel_segments if training else 1)
    dataset = dataset.map(degrade, num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    return dataset.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)
