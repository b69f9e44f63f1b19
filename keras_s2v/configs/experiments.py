"""Experiment configs: nested dataclasses and a registry of named experiments.

``get_experiment("s2v")`` returns the paper's setting; every experiment has a
``*_tiny`` twin for the tests. ``apply_overrides(config, ["train.epochs=3"])``
sets any field by its dotted path, with the value parsed as the field's type.

``ModelConfig`` holds what every model kind reads (kind, width, ...) and one
section per family, which only that family's kinds read: ``model.speech2vid``,
``model.deblur``, ``model.syncnet``, ``model.tgan``, ``model.glance`` (also
``lipflow`` and ``lipae``). Runs written before the sections (a flat model
config) load through ``LEGACY_MODEL_FIELDS``, and ``--override model.NAME``
takes those old names too.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import typing


@dataclasses.dataclass(slots=True)
class Speech2VidConfig:
    """Speech2Vid (kind ``speech2vid``): the generator's architecture and what it trains against."""

    skip_connections: bool = True
    separable: bool = False  # depthwise-separable body convolutions (MobileNet blocks)
    upsampling: str = "transpose"  # decoder: transpose (the paper) | resize (resize + conv: no checkerboard)
    high_res_skips: bool = False  # also the identity encoder's 56 and 28 px maps into the decoder (sharper faces)
    full_res_skip: bool = False  # a 112 px decoder stage fed the faces' own pixels (needs skip_connections)
    masked_target: bool = False  # also the target frame, lower half masked (Wav2Lip): keeps its pose
    identity_weights: str | None = None  # optional VGG-Face-style weights for the identity encoder
    sync_model: str | None = None  # the frozen sync expert (workdir or preset) of train.sync_weight


@dataclasses.dataclass(slots=True)
class DeblurConfig:
    """The deblurring CNN (kind ``deblur``): VDSR-style, ``depth`` convolutions of ``filters``."""

    depth: int = 10
    filters: int = 64


@dataclasses.dataclass(slots=True)
class SyncNetConfig:
    """The sync expert (kind ``syncnet``)."""

    max_shift: int = 5  # audio offsets -K..K frames contrasted with each video window
    crop: str = "lower_half"  # lower_half (SyncNet, Wav2Lip) | mouth (align.lip_box)
    dropout: float = 0.0  # dropout before the video embedding
    centered: bool = False  # each window minus its mean (frames: motion; MFCC: cepstral mean norm.)


@dataclasses.dataclass(slots=True)
class TemporalGANConfig:
    """The temporal GAN (kind ``tgan``); ``ModelConfig.embedding_dim`` is its per-window audio code."""

    audio_input: str = "pcm"  # pcm: raw 0.16 s windows | mfcc: Speech2Vid's 12 x 35 MFCC windows
    identity_dim: int = 50
    context_dim: int = 256  # 2-layer GRU over the audio codes
    noise_dim: int = 10
    noise_layers: int = 1  # GRU layers over the Gaussian noise
    noise_std: float = 0.6
    plain_convs: bool = False  # decoder: a plain convolution after each skip (the MFCC variant)
    frame_discriminator: str = "strided"  # strided (6 convolutions) | pooled (4 conv + pool, 2 fully connected)
    sequence_pooling: str = "last_state"  # last_state | pyramid (1-D spatial pyramid pooling: any length)


@dataclasses.dataclass(slots=True)
class GlanceConfig:
    """Lips at a glance (kind ``glance``) and its pretrained helpers (kinds ``lipflow`` and ``lipae``)."""

    window_frames: int = 16  # lip frames generated at once (0.64 s); inference blends windows overlapping by half
    skips: bool = True  # identity-encoder skips into the 3-D decoder at 16 and 32 px
    correlation: str = "derivative"  # audio-visual correlation loss: derivative | plain (no derivatives) | none
    motion: str = "flow"  # what the correlation loss and the discriminator's third stream see: flow | difference
    discriminator_streams: str = "audio,video,flow"  # "audio,video": the two-stream ablation
    correlation_dim: int = 64  # phi_s and phi_v output features
    flow_model: str | None = None  # trained lipflow workdir; None: trained first into <workdir>/flow
    perceptual_model: str | None = None  # trained lipae workdir; None: trained first into <workdir>/perceptual


@dataclasses.dataclass(slots=True)
class ModelConfig:
    """What every kind shares, then one section per model family (each kind reads its own).

    Slotted, as its sections are: setting a field that is not there (an old flat name, a typo) is an
    AttributeError instead of a silent no-op.
    """

    kind: str = "speech2vid"  # speech2vid | deblur | syncnet | tgan | glance | lipflow | lipae
    num_identity_images: int = 1  # identity faces stacked on channels: 1, or 5 (Speech2Vid only)
    width: float = 1.0  # filter-count multiplier
    embedding_dim: int = 256  # the audio (and, for syncnet, the joint) embedding
    init_from: str | None = None  # a trained workdir (or preset) of the same model whose weights start this run
    speech2vid: Speech2VidConfig = dataclasses.field(default_factory=Speech2VidConfig)
    deblur: DeblurConfig = dataclasses.field(default_factory=DeblurConfig)
    syncnet: SyncNetConfig = dataclasses.field(default_factory=SyncNetConfig)
    tgan: TemporalGANConfig = dataclasses.field(default_factory=TemporalGANConfig)
    glance: GlanceConfig = dataclasses.field(default_factory=GlanceConfig)


# The flat model config of runs trained before the sections (their config.json, the presets' and
# --override model.NAME): old name -> its path under ``model``. ``ExperimentConfig.from_dict`` and
# ``apply_overrides`` read the old names through this table.
LEGACY_MODEL_FIELDS = {
    "skip_connections": "speech2vid.skip_connections",
    "separable": "speech2vid.separable",
    "upsampling": "speech2vid.upsampling",
    "high_res_skips": "speech2vid.high_res_skips",
    "full_res_skip": "speech2vid.full_res_skip",
    "masked_target": "speech2vid.masked_target",
    "identity_weights": "speech2vid.identity_weights",
    "sync_model": "speech2vid.sync_model",
    "deblur_depth": "deblur.depth",
    "deblur_filters": "deblur.filters",
    "sync_max_shift": "syncnet.max_shift",
    "sync_crop": "syncnet.crop",
    "sync_dropout": "syncnet.dropout",
    "sync_centered": "syncnet.centered",
    "audio_input": "tgan.audio_input",
    "identity_dim": "tgan.identity_dim",
    "context_dim": "tgan.context_dim",
    "noise_dim": "tgan.noise_dim",
    "noise_layers": "tgan.noise_layers",
    "noise_std": "tgan.noise_std",
    "plain_convs": "tgan.plain_convs",
    "frame_discriminator": "tgan.frame_discriminator",
    "sequence_pooling": "tgan.sequence_pooling",
    "window_frames": "glance.window_frames",
    "glance_skips": "glance.skips",
    "correlation": "glance.correlation",
    "motion": "glance.motion",
    "discriminator_streams": "glance.discriminator_streams",
    "correlation_dim": "glance.correlation_dim",
    "flow_model": "glance.flow_model",
    "perceptual_model": "glance.perceptual_model",
}


@dataclasses.dataclass
class DataConfig:
    batch_size: int = 32  # per replica; global = batch_size x replicas
    train_split: str = "train"
    validation_split: str = "validation"
    samples_per_segment: int = 16  # (target, identity) pairs drawn from each track segment per pass
    min_identity_gap: float = 0.5  # identity frames at least this fraction of the segment from the target
    shuffle_buffer: int = 1024
    augment: bool = True
    augment_geometry: float = 0.0  # syncnet: random shifts and zooms up to this fraction of the crop
    validation_samples_per_segment: int = 4
    blur_max_sigma: float = 3.0  # deblur training: Gaussian blur strength range
    blur_max_motion: int = 9  # deblur training: motion-blur kernel length range
    sequence_lengths: str = "16"  # tgan: frames per training sequence; several ("8,16,24"): bucketed batches
    # Training segments kept after the first pass, still JPEG (pipeline._segments): "" none | "memory" | a file
    # path prefix. Saves reading and parsing the shards again, not decoding (most of the input's work).
    cache: str = ""
    # Training segments whose samples are drawn and decoded at once, in parallel threads (pipeline._samples); 1: one
    # after another in one thread, which bounds the input at 1.4 to 2.9 x one core's rate. >1 gives other batches.
    parallel_segments: int = 1
    # How --strategy multi_worker splits the training input (distribute.SHARD_BY): "data", every worker reads every
    # shard file and keeps its part of each global batch (one machine's batches); "file", each worker reads only its
    # own files (dealt round-robin; at least one per worker) and draws its own samples: no decoding of the others'.
    shard_by: str = "data"


@dataclasses.dataclass
class TrainConfig:
    optimizer: str = "sgd"  # sgd (the paper: momentum, fixed rate) | adam
    learning_rate: float = 1e-5
    momentum: float = 0.9
    epochs: int = 50
    steps_per_epoch: int = 500
    validation_steps: int = 50
    early_stopping_patience: int = 5  # 0: no early stopping
    seed: int = 0
    image_grid_size: int = 4  # validation examples in the TensorBoard image grid
    # GAN training (kind "tgan"): learning_rate is the generator's.
    l1_weight: float = 400.0  # lower-face L1 against the adversarial terms
    d_frame_learning_rate: float = 1e-3
    d_sequence_learning_rate: float = 5e-5
    learning_rate_drop_epoch: int = 0  # from the epoch after this one, generator and frame D rates x factor; 0: never
    learning_rate_drop_factor: float = 0.9
    adam_beta_1: float = 0.9
    lr_schedule: str = "constant"  # constant | cosine (to 5 % of learning_rate over epochs x steps_per_epoch)
    # Speech2Vid reconstruction (training.losses.FaceReconstructionLoss): L1 over the face, plus these
    # times L1 over the mouth box and (1 - SSIM) of the mouth box; both 0: the paper's L1.
    mouth_weight: float = 0.0
    ssim_weight: float = 0.0
    # Speech2Vid: the frozen expert's (model.sync_model) distance between generated 5-frame windows and
    # their audio, this times (training.lipsync); 0: frames are trained one at a time, without it.
    sync_weight: float = 0.0
    # ... and a discriminator of mouth boxes (real or generated, beside the still's) whose verdict, this
    # times, the generator is trained against: what keeps the mouth sharp where L1 blurs it.
    mouth_adversarial_weight: float = 0.0
    weight_decay: float = 0.0  # Adam's decoupled weight decay
    # Lips at a glance: L = correlation + pixel (L1) + perceptual + adversarial, each weighted; 0 switches a term off.
    correlation_weight: float = 1.0
    pixel_weight: float = 0.5
    perceptual_weight: float = 1.0
    adversarial_weight: float = 1.0
    mismatch_weight: float = 0.5  # lambda_p: real video with another clip's audio, scored as fake
    generated_weight: float = 0.5  # lambda_u: generated video with its audio, scored as fake
    pretrain_epochs: int = 4  # the flow network and the perceptual autoencoder, trained first when not given
    # Compute dtype (keras.mixed_precision): float32 | mixed_bfloat16 (CPUs with AVX-512 BF16, TPUs, Ampere+
    # GPUs) | mixed_float16 (GPUs; the loss is scaled, LossScaleOptimizer). Variables and model.keras stay float32.
    precision: str = "float32"
    jit_compile: bool = False  # XLA-compile the training and validation steps


@dataclasses.dataclass
class ExperimentConfig:
    name: str = "s2v"
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> ExperimentConfig:
        """The config of ``to_dict``, or of a ``config.json`` written before the model sections (its flat model
        fields moved by ``LEGACY_MODEL_FIELDS``); fields it lacks take their defaults, unknown ones are a
        TypeError."""
        return cls(
            name=values["name"],
            model=_build(ModelConfig, sectioned_model(values["model"])),
            data=_build(DataConfig, values["data"]),
            train=_build(TrainConfig, values["train"]),
        )


def sectioned_model(values: dict) -> dict:
    """A model config dict with the old flat names (``LEGACY_MODEL_FIELDS``) moved into their sections."""
    values = {key: dict(value) if isinstance(value, dict) else value for key, value in values.items()}
    for old, path in LEGACY_MODEL_FIELDS.items():
        if old in values:
            section, field = path.split(".")
            given = values.setdefault(section, {})
            if not isinstance(given, dict) or field in given:
                raise ValueError(f"model.{old} and model.{path} both given")
            given[field] = values.pop(old)
    return values


def _build(cls, values: dict):
    """``cls`` from a dict, its dataclass fields (the model's sections) built from theirs."""
    if not isinstance(values, dict):
        raise TypeError(f"{cls.__name__}: a dict of fields, not {values!r}")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _build(hints[k], v) if dataclasses.is_dataclass(hints.get(k)) else v for k, v in values.items()})


# --- Registry -------------------------------------------------------------------------------

_EXPERIMENTS: dict[str, typing.Callable[[], ExperimentConfig]] = {}


def register(name: str):
    def wrap(fn):
        _EXPERIMENTS[name] = fn
        return fn

    return wrap


def experiment_names() -> list[str]:
    return sorted(_EXPERIMENTS)


def get_experiment(name: str) -> ExperimentConfig:
    if name not in _EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(experiment_names())}")
    config = _EXPERIMENTS[name]()
    config.name = name
    return config


def _tiny(config: ExperimentConfig) -> ExperimentConfig:
    """Same graph shape at 1/8 width, few small steps: for tests on 2 CPU cores."""
    config = copy.deepcopy(config)
    config.model.width = 0.125
    config.model.embedding_dim = 32
    config.model.tgan.identity_dim = 16
    config.model.tgan.context_dim = 32
    config.model.tgan.noise_dim = 4
    config.model.deblur.depth = 4
    config.model.deblur.filters = 8
    config.data.batch_size = 4
    config.data.samples_per_segment = 4
    config.data.shuffle_buffer = 64
    config.data.validation_samples_per_segment = 2
    config.train.optimizer = "adam"
    config.train.learning_rate = 3e-3
    config.train.epochs = 2
    config.train.steps_per_epoch = 3
    config.train.validation_steps = 2
    config.train.image_grid_size = 2
    if config.model.kind == "tgan":
        config.data.sequence_lengths = "4,8" if config.model.tgan.sequence_pooling == "pyramid" else "8"
    if config.model.kind in GLANCE_KINDS:
        config.model.glance.window_frames = 8
        config.model.glance.correlation_dim = 8
        config.train.pretrain_epochs = 1
    return config


@register("s2v")
def s2v() -> ExperimentConfig:
    """The paper: 1 identity image, skips, L1, SGD with momentum at a fixed 1e-5."""
    return ExperimentConfig()


@register("s2v_5img")
def s2v_5img() -> ExperimentConfig:
    config = s2v()
    config.model.num_identity_images = 5
    return config


@register("s2v_noskip")
def s2v_noskip() -> ExperimentConfig:
    """The paper's ablation without identity skip connections."""
    config = s2v()
    config.model.speech2vid.skip_connections = False
    return config


@register("deblur")
def deblur() -> ExperimentConfig:
    """VDSR-style deblurring CNN on artificially blurred aligned faces."""
    config = s2v()
    config.model.kind = "deblur"
    config.train.optimizer = "adam"
    config.train.learning_rate = 1e-4
    config.data.batch_size = 16
    return config


@register("s2v_small")
def s2v_small() -> ExperimentConfig:
    """What `make demo` trains on 2 CPU cores in minutes: quarter width, Adam."""
    config = s2v()
    config.model.width = 0.25
    config.model.embedding_dim = 128
    config.data.batch_size = 16
    config.train.optimizer = "adam"
    config.train.learning_rate = 1e-3
    config.train.epochs = 8
    config.train.steps_per_epoch = 40
    config.train.validation_steps = 5
    return config


@register("s2v_mobile")
def s2v_mobile() -> ExperimentConfig:
    """Phone-sized: the paper's training at half width with depthwise-separable body convolutions.

    What runs per video frame on the phone is ``frame_generator()`` (audio
    encoder + decoder); the identity encoder runs once per face. Counted by
    ``keras_s2v.models.flops.generator_flops`` (batch 1, BatchNorm folded):

    ==========  ================  ===============  ===========  ==========
    experiment  identity encoder  frame generator  full model   parameters
    ==========  ================  ===============  ===========  ==========
    s2v         0.773 GFLOP       2.113 GFLOP      2.886 GFLOP  41.1 M
    s2v_small   0.065 GFLOP       0.137 GFLOP      0.202 GFLOP  3.2 M
    s2v_mobile  0.064 GFLOP       0.207 GFLOP      0.271 GFLOP  9.6 M
    ==========  ================  ===============  ===========  ==========

    Separable blocks cut the 3 x 3 convolutions about 8-fold (5 x 5: 20-fold), but the
    decoder's transposed convolutions stay standard and then dominate (0.16 of
    the 0.207 GFLOP); they scale with width squared, hence width 0.5: about
    a fifth of the 1 GFLOP per-frame budget. Separable at full width would
    still cost 0.78 GFLOP per frame. ``embedding_dim`` stays 256: it changes
    only the 1 x 1 ``fc7`` and the first transposed convolution (128 would
    save 0.005 GFLOP).
    """
    config = s2v()
    config.model.speech2vid.separable = True
    config.model.width = 0.5
    return config


@register("s2v_real")
def s2v_real() -> ExperimentConfig:
    """Speech2Vid for real corpora (the presets): what the paper's recipe lacks on a few minutes of real video.

    Each change is one field, so each has its ablation (``--override``):

    * ``model.speech2vid.upsampling=resize``: resize + 3 x 3 convolutions, no transposed-convolution checkerboard;
    * ``model.speech2vid.high_res_skips``: the identity face's 56 and 28 px maps reach the decoder, so skin,
      teeth and edges come from the face instead of being drawn from a 14 x 14 map;
    * ``train.mouth_weight`` and ``train.ssim_weight``: the loss looks hardest at the mouth box
      and rewards its edges, where plain L1 settles on a blurred average mouth;
    * ``model.speech2vid.masked_target`` (Wav2Lip, LipGAN): the frame being made, its lower half masked,
      joins the identity face, so pose, light and background are the frame's own and the
      model's whole job is the mouth (without it, the generated face keeps the still's pose
      while the real head moves);
    * ``model.speech2vid.full_res_skip``: a 112 px decoder stage that sees the faces' own pixels, where the decoder
      otherwise ends on a 56 px map upsampled (on the 13 held-out speakers after phase 1, mouth-opening
      correlation 0.215 -> 0.326, LMD 1.63 -> 1.43 px);
    * Adam 3e-4 with a cosine decay, at half width.
    """
    config = s2v()
    m, s, d, t = config.model, config.model.speech2vid, config.data, config.train
    m.width, m.embedding_dim, s.upsampling, s.high_res_skips = 0.5, 256, "resize", True
    s.masked_target, s.full_res_skip = True, True
    d.batch_size, d.validation_samples_per_segment = 16, 16
    t.optimizer, t.learning_rate, t.lr_schedule = "adam", 3e-4, "cosine"
    t.mouth_weight, t.ssim_weight = 4.0, 1.0
    t.epochs, t.steps_per_epoch, t.validation_steps, t.early_stopping_patience = 30, 100, 20, 0
    return config


@register("s2v_real_sync")
def s2v_real_sync() -> ExperimentConfig:
    """Phase 2 of the presets: an ``s2v_real`` run (``model.init_from``) trained on with Wav2Lip's critic, the
    frozen sync expert ``syncnet_real`` on windows of 5 frames; a third of the learning rate, batches of 8
    windows (40 frames).

    Not in the shipped preset: it helped the 56 px decoder (held-out mouth-opening correlation 0.215 ->
    0.276) but not ``full_res_skip``'s (0.326 -> 0.279, LMD 1.43 -> 1.48 px after 12 epochs), and the
    expert's sync columns stop being independent of what the model was trained on.

    Its other critic, the mouth-box discriminator (``train.mouth_adversarial_weight``), is off: at 0.1
    for 800 steps it sharpened the lips (CPBD 0.114 -> 0.139 on 8 held-out clips) but tinted the faces
    and lowered the mouth-opening correlation (0.274 -> 0.229).
    """
    config = s2v_real()
    m, d, t = config.model, config.data, config.train
    m.speech2vid.sync_model = "syncnet_real"
    t.sync_weight = 0.5
    t.learning_rate, d.batch_size, t.epochs = 1e-4, 8, 12
    return config


@register("s2v_real_gan")
def s2v_real_gan() -> ExperimentConfig:
    """Phase 2 for sharper lips: an ``s2v_real`` run (``model.init_from``) trained on against the mouth-box
    discriminator alone (Wav2Lip's visual-quality critic, ``train.mouth_adversarial_weight``) at a third of the
    weight that tinted faces (0.1), without the sync expert; a third of the learning rate, windows of 5 frames.

    Not in the shipped preset: from v1, after 8 of its 12 epochs, the 13 held-out speakers' lips were no sharper
    (CPBD 0.098 -> 0.096) and the mouth followed speech less (mouth-opening correlation 0.326 -> 0.285).
    """
    config = s2v_real()
    d, t = config.data, config.train
    t.mouth_adversarial_weight = 0.03
    t.learning_rate, d.batch_size, t.epochs = 1e-4, 8, 12
    return config


@register("s2v_mobile_real")
def s2v_mobile_real() -> ExperimentConfig:
    """``s2v_real`` for phones: the same recipe at a quarter width (half of ``s2v_real``'s), a quarter of the
    per-frame FLOPs (0.31 against 1.21 GFLOP for the frame generator, 4.4 M parameters against 12.5 M).

    Standard convolutions, not ``s2v_mobile``'s depthwise-separable blocks: with those (0.18 GFLOP) this
    recipe ended 20 epochs at a validation loss of 0.85 with a training loss of 0.69 (underfitting); at a
    quarter width it reached 0.675 by epoch 23 of 30 (``s2v_real``: 0.61). On the 13 held-out speakers its
    mouth opening correlates 0.278 with the real one against 0.105 driven by another clip's speech (the
    separable blocks' first version ignored the audio at inference), ACD 0.416, LMD 1.52 px.
    """
    config = s2v_real()
    config.model.width = 0.25
    return config


@register("syncnet")
def syncnet() -> ExperimentConfig:
    """The sync expert: 5 lower faces vs 0.2 s of MFCC, in-sync against shifts of up to 5 frames.

    What ``keras_s2v.evaluate`` scores lip sync with and ``prepare --sync_model``
    picks active speakers and corrects AV offsets with. Sized to train on CPU
    (about 0.4 s a step of 32 on 2 cores).
    """
    config = s2v()
    config.model.kind = "syncnet"
    config.model.width = 0.5
    config.model.embedding_dim = 128
    config.data.batch_size = 32
    config.train.optimizer = "adam"
    config.train.learning_rate = 1e-3
    config.train.epochs = 30
    config.train.steps_per_epoch = 100
    config.train.validation_steps = 20
    return config


@register("syncnet_real")
def syncnet_real() -> ExperimentConfig:
    """The sync expert for real corpora of a few dozen speakers: on ``syncnet`` alone such a corpus is memorised
    (training accuracy 0.25 while held-out speakers stayed at chance, 0.1, after 2 200 steps on 48 speakers).

    What a model cannot memorise a speaker by is cut away or varied: the mouth box instead of the
    whole lower face, shifts and zooms of up to 8 % (alignment differs between corpora), dropout
    before the embedding; a cosine-decayed learning rate.
    """
    config = syncnet()
    config.model.syncnet.crop, config.model.syncnet.dropout = "mouth", 0.3
    config.data.augment_geometry, config.data.validation_samples_per_segment = 0.08, 32
    config.train.lr_schedule, config.train.epochs, config.train.early_stopping_patience = "cosine", 120, 0
    return config


@register("tgan")
def tgan() -> ExperimentConfig:
    """Vougioukas et al. 2018: raw 0.16 s audio windows, frame and sequence discriminators.

    Generator Adam 2e-4 and frame discriminator 1e-3, both x 0.9 after epoch
    20; sequence discriminator 5e-5 fixed; loss = adversarial terms + 400 x
    L1 on the lower half of the face. Frames are the shards' 112 x 112 aligned
    crops (the paper: 128 x 96); ``TemporalGenerator(image_size=...)`` takes
    any multiple of 16.
    """
    config = s2v()
    m, g, t = config.model, config.model.tgan, config.train
    m.kind, g.audio_input, m.embedding_dim = "tgan", "pcm", 256
    g.frame_discriminator, g.sequence_pooling = "strided", "last_state"
    config.data.batch_size = 16
    config.data.samples_per_segment = 4
    config.data.shuffle_buffer = 256
    config.data.sequence_lengths = "16"
    t.optimizer, t.learning_rate = "adam", 2e-4
    t.d_frame_learning_rate, t.d_sequence_learning_rate = 1e-3, 5e-5
    t.learning_rate_drop_epoch, t.learning_rate_drop_factor = 20, 0.9
    t.early_stopping_patience = 0  # a GAN's L1 is no stopping signal
    return config


@register("tgan_mfcc_spp")
def tgan_mfcc_spp() -> ExperimentConfig:
    """The MFCC variant: Speech2Vid's audio encoder + 2-layer GRU, 2-layer noise GRU, a plain convolution
    after each skip, a pooled frame discriminator and a pyramid-pooled sequence discriminator trained on
    sequences of several lengths. Generator Adam 2e-3, discriminators 2e-5.
    """
    config = tgan()
    g, t = config.model.tgan, config.train
    g.audio_input, g.noise_layers, g.plain_convs = "mfcc", 2, True
    g.frame_discriminator, g.sequence_pooling = "pooled", "pyramid"
    config.data.sequence_lengths = "8,16,24"
    t.learning_rate, t.d_frame_learning_rate, t.d_sequence_learning_rate = 2e-3, 2e-5, 2e-5
    t.learning_rate_drop_epoch = 0
    return config


def _cpu_sized(config: ExperimentConfig, sequence_lengths: str) -> ExperimentConfig:
    """Quarter width, short sequences, a few hundred steps: trains on 2 CPU cores in about 20 minutes."""
    config.model.width = 0.25
    config.model.embedding_dim = 128
    config.model.tgan.context_dim = 128
    config.data.batch_size = 8
    config.data.sequence_lengths = sequence_lengths
    config.train.epochs = 8
    config.train.steps_per_epoch = 40
    config.train.validation_steps = 5
    config.train.learning_rate_drop_epoch = min(config.train.learning_rate_drop_epoch, 6)
    return config


register("tgan_small")(lambda: _cpu_sized(tgan(), "12"))
register("tgan_mfcc_spp_small")(lambda: _cpu_sized(tgan_mfcc_spp(), "6,12"))


GLANCE_KINDS = ("glance", "lipflow", "lipae")


@register("glance")
def glance() -> ExperimentConfig:
    """Chen et al. 2018, lips at a glance: 16 64 x 64 lip frames from one lip image and 0.64 s of log-mel.

    L = correlation + 0.5 L1 + perceptual + adversarial (three-stream
    discriminator, mismatched audio as a third pair kind, lambda_p = lambda_u
    = 0.5); Adam 2e-4, beta_1 0.5, weight decay 4e-4. The flow network and
    the perceptual autoencoder are trained first (``lipflow``, ``lipae``) unless
    ``model.glance.flow_model`` / ``model.glance.perceptual_model`` name trained workdirs.
    """
    config = s2v()
    m, t = config.model, config.train
    m.kind = "glance"
    config.data.batch_size = 16
    config.data.samples_per_segment = 4
    config.data.shuffle_buffer = 256
    t.optimizer, t.learning_rate, t.adam_beta_1, t.weight_decay = "adam", 2e-4, 0.5, 4e-4
    t.early_stopping_patience = 0  # a GAN's losses are no stopping signal
    return config


def _glance_ablation(**changes):
    """The full model with one part switched off (the paper's ablations, plus no adversarial term)."""

    def build() -> ExperimentConfig:
        config = glance()
        for key, value in changes.items():  # section__field: a config path, as --override spells it with dots
            *sections, field = field_path(key.replace("__", "."))
            setattr(functools.reduce(getattr, sections, config), field, value)
        return config

    return build


GLANCE_ABLATIONS = {
    "glance_no_corr": {"model__glance__correlation": "none"},
    "glance_plain_corr": {"model__glance__correlation": "plain"},
    "glance_two_stream": {"model__glance__discriminator_streams": "audio,video"},
    "glance_framediff": {"model__glance__motion": "difference"},
    "glance_no_perc": {"train__perceptual_weight": 0.0},
    "glance_no_pix": {"train__pixel_weight": 0.0},
    "glance_no_gan": {"train__adversarial_weight": 0.0},
}
for _name, _changes in GLANCE_ABLATIONS.items():
    register(_name)(_glance_ablation(**_changes))


def _pretraining(kind: str):
    def build() -> ExperimentConfig:
        config = glance()
        config.model.kind = kind
        config.train.optimizer, config.train.learning_rate, config.train.adam_beta_1 = "adam", 1e-3, 0.9
        config.train.weight_decay = 0.0
        config.train.epochs = 10
        return config

    return build


register("lipflow")(_pretraining("lipflow"))  # self-supervised lip flow: photometric + smoothness
register("lipae")(_pretraining("lipae"))  # the perceptual loss's autoencoder: reconstruct lip frames


def _glance_cpu_sized(config: ExperimentConfig) -> ExperimentConfig:
    """Quarter width, batch 8, a few hundred steps: trains on 2 CPU cores in about 15 minutes."""
    config.model.width = 0.25
    config.model.glance.correlation_dim = 32
    config.data.batch_size = 8
    config.train.epochs = 8
    config.train.steps_per_epoch = 40
    config.train.validation_steps = 5
    config.train.pretrain_epochs = 6  # 240 steps: the autoencoder's BatchNorm statistics settle (it runs frozen)
    return config


for _name in ("glance", *GLANCE_ABLATIONS):
    register(f"{_name}_small")(lambda _base=_name: _glance_cpu_sized(_EXPERIMENTS[_base]()))


for _name in (
    "s2v",
    "s2v_5img",
    "s2v_noskip",
    "deblur",
    "s2v_small",
    "s2v_mobile",
    "s2v_real",
    "syncnet",
    "syncnet_real",
    "s2v_real_sync",
    "tgan",
    "tgan_mfcc_spp",
    "glance",
    *GLANCE_ABLATIONS,
    "lipflow",
    "lipae",
):
    register(f"{_name}_tiny")(lambda _base=_name: _tiny(_EXPERIMENTS[_base]()))


# --- Overrides ------------------------------------------------------------------------------


def _parse(value: str, annotation):
    text = value.strip()
    kinds = typing.get_args(annotation) or (annotation,)
    if text.lower() in ("none", "null") and type(None) in kinds:
        return None
    kind = next((k for k in kinds if k is not type(None)), str)
    if kind is bool or kind == "bool":
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if kind in (int, "int"):
        return int(text)
    if kind in (float, "float"):
        return float(text)
    return text


def field_path(key: str) -> list[str]:
    """The parts of a dotted config path; an old flat model name (``model.full_res_skip``) those of its section's
    field (``model.speech2vid.full_res_skip``, ``LEGACY_MODEL_FIELDS``)."""
    parts = key.strip().split(".")
    if len(parts) == 2 and parts[0] == "model" and parts[1] in LEGACY_MODEL_FIELDS:
        return ["model", *LEGACY_MODEL_FIELDS[parts[1]].split(".")]
    return parts


def apply_overrides(config: ExperimentConfig, overrides) -> ExperimentConfig:
    """Set fields from ``section.field=value`` strings (``train.epochs=3``, ``model.speech2vid.separable=true``;
    the old flat model names too: ``model.separable=true``)."""
    config = copy.deepcopy(config)
    for override in overrides or []:
        if "=" not in override:
            raise ValueError(f"override {override!r} is not key=value")
        key, value = override.split("=", 1)
        parts = field_path(key)
        target = config
        for part in parts[:-1]:
            if not dataclasses.is_dataclass(target) or not hasattr(target, part):
                raise ValueError(f"unknown config field {key!r}")
            target = getattr(target, part)
        field = (
            {f.name: f for f in dataclasses.fields(target)}.get(parts[-1]) if dataclasses.is_dataclass(target) else None
        )
        if field is None or dataclasses.is_dataclass(getattr(target, parts[-1])):
            raise ValueError(f"unknown config field {key!r}")
        hints = typing.get_type_hints(type(target))
        try:
            setattr(target, parts[-1], _parse(value, hints[parts[-1]]))
        except ValueError as error:
            raise ValueError(f"override {override!r}: {error}") from None
    return config
