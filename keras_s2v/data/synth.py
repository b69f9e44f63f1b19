"""Synthetic talking faces with exact ground truth: espeak-ng speech + a warped portrait.

Why: tests and ``make demo`` need talking-face video whose mouth movements are
*known* (landmarks, phonemes) and that renders in seconds without a dataset.

Pipeline for one clip:

1. Speech. libespeak-ng (through ctypes, one process-wide engine) speaks
   sentences and reports every phoneme with its time in the audio. Audio is
   resampled to ``audio.SAMPLE_RATE``.
2. Articulation. Each phoneme maps to a viseme (``PHONEME_VISEMES``) whose
   targets (jaw drop, lip gap, lip width, rounding, lower-lip tuck) are blended
   over time with dominance functions (coarticulation, Cohen & Massaro 1993),
   then sampled at the centre of every video frame. Bilabials close the lips
   exactly; unvoiced stops close them over the silence espeak leaves *before*
   the stop's event (measured from the audio).
3. Face. The portrait's 68 landmarks (``FaceAnalyzer``) move: mouth and jaw
   from the articulation, eyelids for blinks, and the whole head by a small
   smooth similarity transform. The image follows through a piecewise-affine
   mesh (Delaunay over landmarks, a ring around the head and the frame border),
   computed as one dense inverse map and a single ``cv2.remap``; the open mouth
   (inner-lip polygon) is painted dark with a hint of teeth.
4. Output. ``DIR/<speaker>/<clip_id>.mp4`` (audio muxed) and ``<clip_id>.json``
   with per-frame landmarks in output pixels, the phoneme timeline, text, voice,
   rate, pitch and seed; ``DIR/corpus.json`` indexes all clips.

Everything is a function of the seed: espeak-ng's own randomness (pitch
flutter, echo, breath noise, roughness counters) is history dependent inside
one process, so the engine runs on a private copy of its voice variants with
those four effects switched off.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import dataclasses
import functools
import json
import math
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from keras_s2v.data import audio as audio_lib
from keras_s2v.data import media
from keras_s2v.data.face import NoFaceError, largest_face

# ============================================================================ Text and voices

#: Harvard sentences (IEEE 1969, public domain): phonetically balanced English.
SENTENCES: tuple[str, ...] = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "Read verse out loud for pleasure.",
    "Hoist the load to your left shoulder.",
    "Take the winding path to reach the lake.",
    "Note closely the size of the gas tank.",
    "Wipe the grease off his dirty face.",
    "Mend the coat before you go out.",
    "The stray cat gave birth to kittens.",
    "The young girl gave no clear response.",
    "The meal was cooked before the bell rang.",
    "What joy there is in living.",
)

#: Short phrases used to top a clip up to the requested length.
SHORT_PHRASES: tuple[str, ...] = (
    "Bob bought a map.",
    "Pam made pea soup.",
    "We may move by May.",
    "Buy more apples.",
    "Paul was happy.",
    "Maybe, maybe not.",
    "Oh, I see.",
    "Wow, look at that.",
    "Come back soon.",
    "Pick me up.",
)

#: espeak-ng voice names (``SetVoiceByName``) and variants used for clips.
VOICE_LANGUAGES: tuple[str, ...] = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland")
#: Language names espeak-ng's SetVoiceByName does not resolve -> the voice file it does.
_VOICE_ALIASES = {"en-gb": "en"}
VOICE_VARIANTS: tuple[str, ...] = ("f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m6", "m7")
RATE_RANGE = (140, 195)  # words per minute
PITCH_RANGE = (30, 70)  # espeak 0-100, 50 = the voice's normal pitch

# ============================================================================ espeak-ng engine

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_VOLUME = 80  # below the default 100: keeps espeak's clipping AGC (history dependent) idle

# Voice-file keywords whose effect depends on earlier utterances in the same
# process (static counters and buffers in wavegen.c): pitch flutter, echo,
# breath noise and roughness (amplitude dips every n glottal cycles, counted
# globally). Removed from our private variants; roughness >= 8 disables it.
_NONDETERMINISTIC_KEYS = (b"flutter", b"echo", b"breath", b"breathw", b"roughness")
_DETERMINISTIC_LINES = b"\nflutter 0\necho 0 0\nroughness 8\n"


class _EspeakEvent(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h (API revision 12)."""

    class _Id(ctypes.Union):
        _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

    _fields_ = [
        ("type", ctypes.c_int),  # espeak_EVENT_TYPE
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of this message's audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _Id),
    ]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)


class EspeakError(RuntimeError):
    """libespeak-ng is missing or refused a request."""


@functools.cache
def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


class _Espeak:
    """The process-wide espeak-ng engine: initialised once, used under a lock.

    libespeak-ng keeps global state (one callback, one voice, one output
    buffer), so every synthesis goes through ``synthesize``, which sets voice,
    rate and pitch itself and collects audio and phoneme events for that call.
    """

    _instance: _Espeak | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError as error:
            raise EspeakError(f"libespeak-ng not found ({error}); install it: apt-get install libespeak-ng1") from error
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_ng_InitializePath.argtypes = [ctypes.c_char_p]
        lib.espeak_ng_InitializePath.restype = None

        self.lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _SYNTH_CALLBACK(self._on_synth)  # kept alive as long as the engine
        self.data_root = self._private_data_root()
        if self.data_root is None:
            warnings.warn(
                "espeak-ng: could not build the deterministic voice data; using the system's, "
                "so audio may differ between runs",
                RuntimeWarning,
                stacklevel=2,
            )
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS,
            0,
            str(self.data_root).encode() if self.data_root else None,
            _INITIALIZE_PHONEME_EVENTS,
        )
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {rate}); is espeak-ng-data installed?")
        self.sample_rate = int(rate)
        lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> _Espeak:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _system_data_dir(self) -> Path | None:
        """The installed ``espeak-ng-data`` directory, as the library itself resolves it."""
        self.lib.espeak_ng_InitializePath(None)
        path = ctypes.c_char_p()
        self.lib.espeak_Info(ctypes.byref(path))
        if path.value and (Path(path.value.decode()) / "voices").is_dir():
            return Path(path.value.decode())
        return None

    def _private_data_root(self) -> Path | None:
        """A temporary data root: the system data by symlink, voice variants made deterministic.

        Returns None (use the system data, not reproducible) if that cannot be built.
        """
        system = self._system_data_dir()
        if system is None or not (system / "voices" / "!v").is_dir():
            return None
        try:
            return self._build_data_root(system)
        except OSError:
            return None

    @staticmethod
    def _build_data_root(system: Path) -> Path:
        root = Path(tempfile.mkdtemp(prefix="keras_s2v_espeak_"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        data = root / "espeak-ng-data"
        data.mkdir()
        for entry in system.iterdir():
            if entry.name != "voices":
                (data / entry.name).symlink_to(entry)
        (data / "voices").mkdir()
        for entry in (system / "voices").iterdir():
            if entry.name != "!v":
                (data / "voices" / entry.name).symlink_to(entry)
        variants = data / "voices" / "!v"
        variants.mkdir()
        for entry in (system / "voices" / "!v").iterdir():
            if not entry.is_file():
                continue
            lines = entry.read_bytes().splitlines()
            kept = [line for line in lines if (line.split() or [b""])[0].lower() not in _NONDETERMINISTIC_KEYS]
            (variants / entry.name).write_bytes(b"\n".join(kept) + _DETERMINISTIC_LINES)
        return root

    def _on_synth(self, wav, num_samples, events) -> int:
        if wav and num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                self._events.append((int(event.audio_position), event.id.string.decode("utf-8", "replace")))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """int16 samples at ``self.sample_rate`` and [(ms, phoneme)] for one utterance."""
        lib = self.lib
        language, plus, variant = voice.partition("+")
        name = _VOICE_ALIASES.get(language, language) + plus + variant
        with self.lock:
            # espeak-ng draws fricative noise from the C library's rand(): reseed it so an
            # utterance does not depend on what was synthesised before it in this process.
            _libc().srand(0)
            if lib.espeak_SetVoiceByName(name.encode()) != 0:
                raise EspeakError(f"espeak-ng has no voice {voice!r} (see `espeak-ng --voices`)")
            lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
            lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
            lib.espeak_SetParameter(_PARAM_RANGE, 50, 0)
            lib.espeak_SetParameter(_PARAM_VOLUME, _VOLUME, 0)
            self._chunks, self._events = [], []
            encoded = text.encode("utf-8")
            status = lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            lib.espeak_Synchronize()
            if status != 0:
                raise EspeakError(f"espeak_Synth failed with status {status} for {text!r}")
            samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return samples, list(self._events)


@dataclasses.dataclass(frozen=True)
class Phoneme:
    """One phoneme as espeak-ng spoke it: mnemonic and [start, end) in seconds."""

    symbol: str
    start: float
    end: float


@dataclasses.dataclass(frozen=True, eq=False)
class Speech:
    """Audio at ``audio.SAMPLE_RATE`` (float32 mono) with its phoneme timeline."""

    waveform: np.ndarray
    phonemes: tuple[Phoneme, ...]
    text: str
    voice: str
    rate: int
    pitch: int

    @property
    def duration(self) -> float:
        return len(self.waveform) / audio_lib.SAMPLE_RATE


def speak(text: str, voice: str = "en-us+m3", rate: int = 175, pitch: int = 50) -> Speech:
    """Synthesise ``text`` with espeak-ng; phoneme times come from espeak's own events."""
    engine = _Espeak.get()
    samples, events = engine.synthesize(text, voice, rate, pitch)
    waveform = _resample(audio_lib.to_float(samples), engine.sample_rate, audio_lib.SAMPLE_RATE)
    duration = len(waveform) / audio_lib.SAMPLE_RATE
    starts = [min(ms / 1000.0, duration) for ms, _ in events]
    starts = np.maximum.accumulate(starts).tolist() if starts else []  # guard: never decreasing
    phonemes = tuple(
        Phoneme(symbol, start, starts[i + 1] if i + 1 < len(starts) else duration)
        for i, ((_, symbol), start) in enumerate(zip(events, starts))
    )
    return Speech(waveform, phonemes, text, voice, int(rate), int(pitch))


def _resample(waveform: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling by FFT (utterances start and end in silence, so no wrap-around).

    NumPy only: importing scipy.signal would cost most of a second per process.
    """
    if rate_in == rate_out or len(waveform) == 0:
        return waveform.astype(np.float32)
    n_out = int(round(len(waveform) * rate_out / rate_in))
    spectrum = np.fft.rfft(waveform.astype(np.float64))
    bins = n_out // 2 + 1
    spectrum = spectrum[:bins] if len(spectrum) >= bins else np.pad(spectrum, (0, bins - len(spectrum)))
    if n_out % 2 == 0 and rate_out < rate_in:
        spectrum[-1] = spectrum[-1].real  # the new Nyquist bin must be real
    return (np.fft.irfft(spectrum, n_out) * (n_out / len(waveform))).astype(np.float32)


def concatenate_speech(
    parts: Sequence[Speech], pauses: Sequence[float], lead: float = 0.0, total: float | None = None
) -> Speech:
    """Join utterances with silent pauses (``pauses[i]`` after part ``i``), padded to ``total`` s."""
    pieces, phonemes, offset = [], [], 0.0

    def silence(seconds: float) -> None:
        nonlocal offset
        n = int(round(seconds * audio_lib.SAMPLE_RATE))
        if n > 0:
            pieces.append(np.zeros(n, np.float32))
            phonemes.append(Phoneme("_", offset, offset + n / audio_lib.SAMPLE_RATE))
            offset += n / audio_lib.SAMPLE_RATE

    silence(lead)
    for part, pause in zip(parts, list(pauses) + [0.0] * len(parts)):
        pieces.append(part.waveform)
        phonemes.extend(Phoneme(p.symbol, p.start + offset, p.end + offset) for p in part.phonemes)
        offset += part.duration
        silence(pause)
    if total is not None and total > offset:
        silence(total - offset)
    waveform = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    first = parts[0]
    return Speech(waveform, tuple(phonemes), " ".join(p.text for p in parts), first.voice, first.rate, first.pitch)


# ============================================================================ Visemes


@dataclasses.dataclass(frozen=True)
class Viseme:
    """Articulation targets of a mouth shape.

    jaw, gap: jaw drop and inner-lip opening, in units of the resting mouth width.
    width: lip-corner spread relative to rest (<1 narrow/rounded, >1 spread).
    round: lip rounding/protrusion 0..1 (pouting outer lips).
    tuck: lower lip drawn up under the upper teeth (f, v) 0..1.
    lips, shape: dominance of this viseme over its neighbours for the opening
      (jaw, gap, tuck) and for the lip shape (width, round): coarticulation.
    """

    jaw: float
    gap: float
    width: float
    round: float = 0.0
    tuck: float = 0.0
    lips: float = 1.0
    shape: float = 1.0


#: Viseme targets (the data that drives the mouth).
VISEMES: dict[str, Viseme] = {
    "rest": Viseme(0.00, 0.00, 1.00, lips=0.8, shape=0.6),
    "bilabial": Viseme(0.06, 0.00, 1.00, lips=2.0, shape=0.3),  # p b m: lips closed
    "labiodental": Viseme(0.05, 0.03, 0.98, tuck=1.0, lips=3.0, shape=0.4),  # f v
    "dental": Viseme(0.10, 0.09, 1.02, lips=1.5, shape=0.5),  # th
    "alveolar": Viseme(0.08, 0.07, 1.02, lips=1.0, shape=0.4),  # t d n l
    "sibilant": Viseme(0.06, 0.05, 1.05, lips=2.0, shape=0.6),  # s z
    "postalveolar": Viseme(0.08, 0.08, 0.86, round=0.6, lips=1.5, shape=2.0),  # sh zh ch j
    "velar": Viseme(0.12, 0.10, 1.00, lips=0.7, shape=0.3),  # k g ng
    "palatal": Viseme(0.06, 0.06, 1.08, lips=1.0, shape=1.0),  # y
    "r": Viseme(0.08, 0.09, 0.88, round=0.45, lips=1.0, shape=1.5),
    "w": Viseme(0.06, 0.05, 0.72, round=1.0, lips=2.0, shape=3.0),
    "transparent": Viseme(0.12, 0.12, 1.00, lips=0.15, shape=0.15),  # h, glottal stop: neighbours win
    "open": Viseme(0.32, 0.40, 1.02, lips=1.5),  # a, A:
    "open_mid": Viseme(0.24, 0.30, 1.00, lips=1.2),  # V (strut), a#
    "mid_front": Viseme(0.20, 0.26, 1.06, lips=1.2),  # E, e
    "close_front": Viseme(0.08, 0.11, 1.12),  # i, I: spread
    "central": Viseme(0.13, 0.17, 1.00, lips=0.7, shape=0.6),  # schwa
    "r_vowel": Viseme(0.13, 0.16, 0.90, round=0.35),  # 3: (nurse)
    "open_round": Viseme(0.28, 0.33, 0.90, round=0.35, lips=1.2),  # 0 (lot)
    "rounded_open": Viseme(0.24, 0.28, 0.80, round=0.7, lips=1.2),  # O: (thought)
    "rounded_mid": Viseme(0.16, 0.19, 0.76, round=0.85),  # o (goat onset)
    "rounded_close": Viseme(0.08, 0.10, 0.70, round=1.0),  # u:, U
}

#: espeak-ng English phoneme mnemonics -> viseme(s); diphthongs split their time.
# Laid out by hand, one row per viseme (the formatter would put each phoneme on its own line).
# fmt: off
PHONEME_VISEMES: dict[str, tuple[str, ...]] = {
    # pauses
    "_": ("rest",), "_:": ("rest",), "_!": ("rest",), "_|": ("rest",), "||": ("rest",),
    # consonants
    "p": ("bilabial",), "b": ("bilabial",), "m": ("bilabial",),
    "f": ("labiodental",), "v": ("labiodental",),
    "T": ("dental",), "D": ("dental",),
    "t": ("alveolar",), "d": ("alveolar",), "n": ("alveolar",), "l": ("alveolar",), "L": ("alveolar",),
    "s": ("sibilant",), "z": ("sibilant",),
    "S": ("postalveolar",), "Z": ("postalveolar",), "tS": ("postalveolar",), "dZ": ("postalveolar",),
    "k": ("velar",), "g": ("velar",), "N": ("velar",), "x": ("velar",),
    "j": ("palatal",), "r": ("r",), "w": ("w",), "W": ("w",),
    "h": ("transparent",), "?": ("transparent",), ";": ("transparent",),
    "@L": ("central", "alveolar"),
    # vowels
    "a": ("open",), "aa": ("open",), "A:": ("open",), "A": ("open",), "a#": ("open_mid",), "V": ("open_mid",),
    "E": ("mid_front",), "e": ("mid_front",),
    "i": ("close_front",), "i:": ("close_front",), "I": ("close_front",),
    "@": ("central",), "3": ("central",), "3:": ("r_vowel",),
    "0": ("open_round",), "O": ("rounded_open",), "O:": ("rounded_open",),
    "o": ("rounded_mid",), "U": ("rounded_close",), "u:": ("rounded_close",), "u": ("rounded_close",),
    # diphthongs and r-coloured vowels
    "aI": ("open", "close_front"), "aU": ("open", "rounded_close"), "eI": ("mid_front", "close_front"),
    "oU": ("rounded_mid", "rounded_close"), "@U": ("central", "rounded_close"), "OI": ("rounded_open", "close_front"),
    "e@": ("mid_front", "central"), "i@": ("close_front", "central"), "U@": ("rounded_close", "central"),
    "aI@": ("open", "close_front", "central"), "aU@": ("open", "rounded_close", "central"),
    "A@": ("open", "r"), "O@": ("rounded_open", "r"), "o@": ("rounded_mid", "r"),
}
# fmt: on

_VOWEL_LETTERS = "aAeEiIoOuUV@03"
_STOPS = frozenset({"p", "b", "t", "d", "k", "g", "tS", "dZ"})
_COARTICULATION_TAU = 0.03  # s: how far a viseme's dominance reaches past its segment
_SMOOTH_SIGMA = 0.012  # s: muscle low-pass on the blended targets
_CLOSURE_RAMP = 0.03  # s: lips meet / part over this time around a bilabial
_GRID_STEP = 0.005  # s
ARTICULATION_PARAMS = ("jaw", "gap", "width", "round", "tuck")


def phoneme_visemes(symbol: str) -> tuple[str, ...]:
    """Viseme(s) of an espeak mnemonic; variants (``I2``, ``t#``, ``r-``) fall back to their base."""
    if symbol in PHONEME_VISEMES:
        return PHONEME_VISEMES[symbol]
    base = symbol
    while base and base[-1] in "#-;23/!'":
        base = base[:-1]
        if base in PHONEME_VISEMES:
            return PHONEME_VISEMES[base]
    if base.rstrip(":") in PHONEME_VISEMES:
        return PHONEME_VISEMES[base.rstrip(":")]
    if base and base[0] in PHONEME_VISEMES:
        return PHONEME_VISEMES[base[0]]
    return ("central",) if base and base[0] in _VOWEL_LETTERS else ("alveolar",)


@dataclasses.dataclass(frozen=True)
class VisemeSegment:
    """A stretch of time with one articulatory target (what the mouth animation uses)."""

    viseme: str
    start: float
    end: float
    phoneme: str


def _frame_rms(waveform: np.ndarray, step: int) -> np.ndarray:
    n = len(waveform) // step
    return np.sqrt(np.mean(waveform[: n * step].reshape(n, step).astype(np.float64) ** 2, axis=1) + 1e-12)


def viseme_segments(speech: Speech) -> list[VisemeSegment]:
    """Articulatory segments of ``speech``: phonemes mapped to visemes, diphthongs split,
    and unvoiced-stop closures moved to where the audio is silent.

    espeak places the event of an unvoiced stop at its burst; the closure (lips
    or tongue sealed, silence) lies at the end of the previous phoneme, so the
    stop's segment is extended back over that silence.
    """
    step = int(audio_lib.SAMPLE_RATE * _GRID_STEP)
    rms = _frame_rms(speech.waveform, step)
    threshold = 0.03 * float(rms.max()) if rms.size else 0.0
    segments: list[VisemeSegment] = []
    phonemes = [p for p in speech.phonemes if p.end > p.start]
    for ph in phonemes:
        start, end = ph.start, ph.end
        visemes = phoneme_visemes(ph.symbol)
        if ph.symbol.rstrip("#2") in _STOPS and segments and rms.size:
            # Walk back from the burst over silent audio, keeping >= 40% of the previous segment.
            prev = segments[-1]
            limit = max(prev.start + 0.4 * (prev.end - prev.start), start - 0.15)
            k = int(start / _GRID_STEP) - 1
            while k >= 0 and k * _GRID_STEP >= limit and rms[min(k, len(rms) - 1)] < threshold:
                k -= 1
            closure = max((k + 1) * _GRID_STEP, limit)
            if closure < start - 1e-6:
                segments[-1] = dataclasses.replace(prev, end=closure)
                start = closure
        if ph.symbol.rstrip("#2") in _STOPS and ph.symbol[0] in "ptk" and end - ph.start > 0.02:
            # The lips part at the burst; the aspiration after it already moves to the next sound.
            release = ph.start + 0.25 * (end - ph.start)
            segments.append(VisemeSegment(visemes[0], start, release, ph.symbol))
            segments.append(VisemeSegment("transparent", release, end, ph.symbol))
            continue
        if len(visemes) == 1:
            segments.append(VisemeSegment(visemes[0], start, end, ph.symbol))
        else:
            # Diphthong: the first target holds a little longer than the glide's end.
            weights = np.array([1.2] + [1.0] * (len(visemes) - 1))
            edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
            segments.extend(
                VisemeSegment(v, float(a), float(b), ph.symbol) for v, a, b in zip(visemes, edges[:-1], edges[1:])
            )
    if not segments or segments[0].start > 0:
        segments.insert(0, VisemeSegment("rest", 0.0, segments[0].start if segments else speech.duration, "_"))
    if segments[-1].end < speech.duration:
        segments.append(VisemeSegment("rest", segments[-1].end, speech.duration, "_"))
    return [s for s in segments if s.end > s.start]


def articulation_track(
    segments: Sequence[VisemeSegment],
    times: np.ndarray,
    duration: float,
    scale: float = 1.0,
    jitter: np.ndarray | None = None,
) -> np.ndarray:
    """``(len(times), 5)`` articulation (``ARTICULATION_PARAMS``) at ``times`` (s).

    Dominance blending: each segment pulls each parameter towards its target
    with weight ``dominance * exp(-distance_outside_segment / tau)``; the blend
    is smoothed, and the lips are then closed exactly over bilabial segments.
    ``scale`` exaggerates or damps jaw and gap (speaker style); ``jitter`` is
    a per-segment multiplier of the same.
    """
    grid = np.arange(0.0, duration + _GRID_STEP, _GRID_STEP)
    starts = np.array([s.start for s in segments])[:, None]
    ends = np.array([s.end for s in segments])[:, None]
    outside = np.maximum(np.maximum(starts - grid[None], grid[None] - ends), 0.0)
    falloff = np.exp(-outside / _COARTICULATION_TAU)  # (S, G)
    targets = np.array(
        [
            [
                VISEMES[s.viseme].jaw,
                VISEMES[s.viseme].gap,
                VISEMES[s.viseme].width,
                VISEMES[s.viseme].round,
                VISEMES[s.viseme].tuck,
            ]
            for s in segments
        ]
    )
    targets[:, :2] *= scale * (jitter[:, None] if jitter is not None else 1.0)
    lips = np.array([VISEMES[s.viseme].lips for s in segments])[:, None] * falloff + 1e-9
    shape = np.array([VISEMES[s.viseme].shape for s in segments])[:, None] * falloff + 1e-9
    track = np.empty((len(grid), 5))
    for j, dominance in ((0, lips), (1, lips), (2, shape), (3, shape), (4, lips)):
        track[:, j] = (dominance * targets[:, j : j + 1]).sum(0) / dominance.sum(0)
    from scipy.ndimage import gaussian_filter1d

    track = gaussian_filter1d(track, _SMOOTH_SIGMA / _GRID_STEP, axis=0, mode="nearest")
    # Exact lip closure over bilabials, parting over a short raised-cosine ramp.
    closure = np.zeros(len(grid))
    for s in segments:
        if s.viseme == "bilabial":
            d = np.maximum(np.maximum(s.start - grid, grid - s.end), 0.0)
            ramp = np.where(d < _CLOSURE_RAMP, 0.5 * (1 + np.cos(np.pi * d / _CLOSURE_RAMP)), 0.0)
            closure = np.maximum(closure, ramp)
    track[:, 1] *= 1.0 - closure
    return np.stack([np.interp(times, grid, track[:, j]) for j in range(5)], axis=1)


def frame_times(num_frames: int, fps: float = audio_lib.FPS) -> np.ndarray:
    """Centre time (s) of each video frame: frame t covers [t, t+1) / fps."""
    return (np.arange(num_frames) + 0.5) / fps


# ============================================================================ Portraits

DEFAULT_PORTRAITS: tuple[str, ...] = ("astronaut", "grace_hopper")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclasses.dataclass(frozen=True, eq=False)
class Portrait:
    """A still face to animate: RGB uint8 image and its 68 landmarks in image pixels."""

    name: str  # speaker id: the output folder name
    image: np.ndarray
    landmarks: np.ndarray
    source: str


@functools.lru_cache(maxsize=2)
def _analyzer(detector: str):
    from keras_s2v.data.face import FaceAnalyzer

    return FaceAnalyzer(detector=detector)


def _detect_landmarks(image: np.ndarray, source: str, detector: str) -> np.ndarray:
    """Landmarks of the largest face; detection on a copy at most 1024 px for speed."""
    import cv2

    scale = min(1.0, 1024.0 / max(image.shape[:2]))
    small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    faces = _analyzer(detector).analyze(small)
    if not faces:
        raise NoFaceError(source, f"no face found (detector={detector}); use a frontal portrait")
    face = largest_face(faces)
    return ((face.landmarks.astype(np.float64) + 0.5) / scale - 0.5).astype(np.float32)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "portrait"


def _default_image(name: str) -> tuple[np.ndarray, str]:
    if name == "astronaut":
        import skimage.data

        return np.ascontiguousarray(skimage.data.astronaut()[..., :3]), "skimage.data.astronaut()"
    if name == "grace_hopper":
        import matplotlib.cbook

        path = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
        return media.read_image(path), str(path)
    raise ValueError(f"unknown default portrait {name!r}; choose from {DEFAULT_PORTRAITS}")


@functools.lru_cache(maxsize=8)
def _default_portrait(name: str, detector: str) -> Portrait:
    image, source = _default_image(name)
    return Portrait(name, image, _detect_landmarks(image, source, detector), source)


def load_portrait(source: str | os.PathLike | np.ndarray, name: str | None = None, detector: str = "dlib") -> Portrait:
    """A portrait from an image file, an RGB array, or a default name (``DEFAULT_PORTRAITS``).

    Raises ``NoFaceError`` (no face) or ``media.MediaError`` (unreadable), naming the file.
    """
    if isinstance(source, np.ndarray):
        image = np.ascontiguousarray(source[..., :3] if source.ndim == 3 else np.stack([source] * 3, -1))
        label = name or "array"
        return Portrait(_safe_name(label), image, _detect_landmarks(image, label, detector), label)
    if isinstance(source, str) and source in DEFAULT_PORTRAITS:
        portrait = _default_portrait(source, detector)
        return dataclasses.replace(portrait, name=_safe_name(name)) if name else portrait
    path = Path(source)
    image = media.read_image(path)
    return Portrait(_safe_name(name or path.stem), image, _detect_landmarks(image, str(path), detector), str(path))


def portrait_files(directory: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``directory``, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: portrait folder not found")
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


# ============================================================================ Face rig and renderer

_PAIRS_INNER = ((61, 67), (62, 66), (63, 65))  # upper / lower inner lip, left to right in the image
_UPPER_OUTER = (49, 50, 51, 52, 53)
_LOWER_OUTER = (59, 58, 57, 56, 55)  # below 49..53 respectively
_EYES = (((36, 39), ((37, 41), (38, 40))), ((42, 45), ((43, 47), (44, 46))))  # corners, (upper, lower) lids
# Eyelid-crease mesh points between each upper-lid point and the brow above it.
_CREASES = ((37, (18, 19)), (38, (19, 20)), (43, (23, 24)), (44, (24, 25)))
_CREASE_HEIGHT = 0.45  # of the way from lid to brow
_CREASE_FOLLOW = 0.5  # share of the lid's blink motion the crease follows
_JAW_WEIGHTS = {3: 0.1, 4: 0.3, 5: 0.55, 6: 0.8, 7: 0.95, 8: 1.0, 9: 0.95, 10: 0.8, 11: 0.55, 12: 0.3, 13: 0.1}
_RING_POINTS = 20
_BORDER_PER_SIDE = 4
CROP_SCALE = 1.75  # output side / landmark extent: the face fills ~57% of the frame


def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


class FaceRig:
    """A portrait cropped to ``size`` x ``size`` with a deformable landmark mesh.

    ``pose`` moves the 68 landmarks (and the head ring) for one frame;
    ``render`` warps the cropped portrait onto them.
    """

    def __init__(self, portrait: Portrait, size: int = 256):
        import cv2
        from scipy.spatial import Delaunay

        self.portrait, self.size = portrait, int(size)
        lm = portrait.landmarks.astype(np.float64)
        x0, y0 = lm.min(0)
        x1, y1 = lm.max(0)
        extent = max(x1 - x0, y1 - y0)
        side = int(round(CROP_SCALE * extent))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.12 * (y1 - y0)  # a little forehead
        left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
        h, w = portrait.image.shape[:2]
        pad = max(0, -left, -top, left + side - w, top + side - h)
        image = portrait.image
        if pad:
            image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        crop = image[top + pad : top + pad + side, left + pad : left + pad + side]
        interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
        self.base = np.ascontiguousarray(cv2.resize(crop, (self.size, self.size), interpolation=interp))
        scale = self.size / side
        self.crop_box = (left, top, left + side, top + side)  # in portrait pixels
        # pixel-centre convention: output pixel i covers input [left + i/scale, left + (i+1)/scale)
        rest = (lm - [left, top] + 0.5) * scale - 0.5
        rest = self._separate(rest)
        self.rest = rest

        # Face frame: x along the eyes, y down; mouth width is the unit of articulation.
        eye_r, eye_l = rest[36:42].mean(0), rest[42:48].mean(0)
        ex = (eye_l - eye_r) / np.linalg.norm(eye_l - eye_r)
        self.axes = np.stack([ex, [-ex[1], ex[0]]])  # rows: x axis, y axis (image coords)
        self.mouth_origin = (rest[48] + rest[54]) / 2
        local = (rest - self.mouth_origin) @ self.axes.T
        self.mouth_width = float(abs(local[54, 0] - local[48, 0]))
        self.local_rest = local
        self.eye_distance = float(np.linalg.norm(eye_l - eye_r))

        # Head ring (moves with the head) and border points (fixed): the mesh covers the frame.
        centre = rest.mean(0)
        rel = (rest - centre) @ self.axes.T
        radii = np.abs(rel).max(0) * np.array([1.3, 1.35])
        angles = np.linspace(0, 2 * np.pi, _RING_POINTS, endpoint=False)
        ring = np.stack([radii[0] * np.cos(angles), radii[1] * np.sin(angles)], 1) @ self.axes + centre
        # Pull ring points that fall outside the frame back towards the centre.
        lo, hi = 3.0, self.size - 4.0
        offset = ring - centre
        with np.errstate(divide="ignore", invalid="ignore"):
            room = np.where(offset > 0, (hi - centre) / offset, np.where(offset < 0, (lo - centre) / offset, np.inf))
        ring = centre + offset * np.minimum(1.0, room.min(1, keepdims=True))
        t = np.linspace(0, 1, _BORDER_PER_SIDE, endpoint=False)
        e = self.size - 0.5
        border = np.concatenate(
            [
                np.stack([-0.5 + t * (e + 0.5), np.full_like(t, -0.5)], 1),
                np.stack([np.full_like(t, e), -0.5 + t * (e + 0.5)], 1),
                np.stack([e - t * (e + 0.5), np.full_like(t, e)], 1),
                np.stack([np.full_like(t, -0.5), e - t * (e + 0.5)], 1),
            ]
        )
        creases = np.array(
            [rest[lid] + _CREASE_HEIGHT * (rest[list(brow)].mean(0) - rest[lid]) for lid, brow in _CREASES]
        )
        self.local_creases = (creases - self.mouth_origin) @ self.axes.T
        self.num_face = 68 + len(creases)  # points posed in the face frame
        self.num_ring = len(ring)
        self.src = np.concatenate([rest, creases, ring, border])
        self.head_pivot = rest[8] + (rest[8] - rest[27]) * 0.35  # below the chin: the neck
        self.triangles = Delaunay(self.src).simplices.astype(np.int32)
        # Colours for the painted mouth, from the portrait: lips and cheek skin.
        lips = np.zeros((self.size, self.size), np.uint8)
        cv2.fillPoly(lips, [np.round(rest[48:60]).astype(np.int32)], 1)
        cv2.fillPoly(lips, [np.round(rest[60:68]).astype(np.int32)], 0)
        self.lip_colour = self.base[lips > 0].mean(0) if lips.any() else np.array([150.0, 80.0, 80.0])
        cheek = np.round(rest[[2, 14]] * 0.6 + rest[[31, 35]] * 0.4).astype(int).clip(0, self.size - 1)
        skin = self.base[cheek[:, 1], cheek[:, 0]].astype(np.float64).mean(0)
        self.tooth_colour = 0.8 * np.array([240.0, 238.0, 230.0]) + 0.2 * skin
        yy, xx = np.mgrid[0 : self.size, 0 : self.size].astype(np.float32)
        self._grid = (xx.ravel(), yy.ravel())

    @staticmethod
    def _separate(points: np.ndarray) -> np.ndarray:
        """Keep paired inner-lip points at least 1 px apart (a triangulation needs distinct points)."""
        points = points.copy()
        for up, lo in _PAIRS_INNER:
            gap = points[lo, 1] - points[up, 1]
            if gap < 1.0:
                mid = (points[up, 1] + points[lo, 1]) / 2
                points[up, 1], points[lo, 1] = mid - 0.5, mid + 0.5
        for a, b in ((60, 48), (64, 54)):
            if np.linalg.norm(points[a] - points[b]) < 1.0:
                points[a, 0] += 1.0 if a == 60 else -1.0
        return points

    # ------------------------------------------------------------------ pose

    def pose(
        self, articulation: np.ndarray, blink: float = 0.0, head: Sequence[float] = (0.0, 1.0, 0.0, 0.0)
    ) -> np.ndarray:
        """All mesh points for one frame; the first 68 are the landmarks (output pixels).

        articulation: (jaw, gap, width, round, tuck) as in ``ARTICULATION_PARAMS``.
        blink: eyelid closure 0 (open) .. 1 (closed).
        head: (angle in radians, scale, dx, dy in pixels) about a pivot at the neck.
        """
        jaw, gap, width, rounding, tuck = (float(v) for v in articulation)
        q = self.local_rest.copy()
        rest = self.local_rest
        W = self.mouth_width
        # --- inner lips: meet at a closing line, then open by `gap` (upper lip moves 30%)
        side_up, side_lo = 0.72 + 0.25 * rounding, 0.86 + 0.12 * rounding  # rounder lower contour
        d_upper, d_lower = {}, {}
        for k, (up, lo) in enumerate(_PAIRS_INNER):
            prof_up, prof_lo = (1.0, 1.0) if k == 1 else (side_up, side_lo)
            meet = rest[up, 1] + 0.35 * (rest[lo, 1] - rest[up, 1])
            new_up = meet - 0.3 * gap * W * prof_up
            new_lo = meet + 0.7 * gap * W * prof_lo
            d_upper[up], d_lower[lo] = new_up - rest[up, 1], new_lo - rest[lo, 1]
            q[up, 1], q[lo, 1] = new_up, new_lo
        # --- outer lips follow the inner ones; rounding pouts them, tuck rolls the lower lip in
        du = [0.5 * d_upper[61], 0.9 * d_upper[61], 0.9 * d_upper[62], 0.9 * d_upper[63], 0.5 * d_upper[63]]
        dl = [0.6 * d_lower[67], d_lower[67], d_lower[66], d_lower[65], 0.6 * d_lower[65]]
        pout = (0.5, 1.0, 1.0, 1.0, 0.5)
        for k, (iu, il) in enumerate(zip(_UPPER_OUTER, _LOWER_OUTER)):
            q[iu, 1] += du[k] - rounding * 0.05 * W * pout[k]
            q[il, 1] += dl[k] + rounding * 0.06 * W * pout[k] - tuck * 0.08 * W * pout[k]
        # --- corners drop a little with the opening
        for c in (48, 54, 60, 64):
            q[c, 1] += 0.14 * gap * W
        # --- lip width about the mouth centre
        q[48:68, 0] = rest[48:68, 0] * width
        # --- jaw: the chin and lower jaw line drop
        for i, wgt in _JAW_WEIGHTS.items():
            q[i, 1] += jaw * W * wgt
        # --- eyelids meet on the line between the eye corners: closed, the eye's inner
        # triangles collapse to nothing, so no iris shows through the lid
        creases = self.local_creases.copy()
        if blink > 0:
            for (a, b), pairs in _EYES:
                chord = rest[b] - rest[a]
                for up, lo in pairs:
                    t = np.dot((rest[up] + rest[lo]) / 2 - rest[a], chord) / np.dot(chord, chord)
                    meet = rest[a] + t * chord
                    q[up] += blink * (meet - rest[up])
                    q[lo] += blink * (meet - rest[lo])
            # The lid skin above each upper-lid point follows it half way: it covers more of
            # an iris that the landmarks put above the lid line, without tearing the brows.
            for k, (lid, _) in enumerate(_CREASES):
                creases[k] += _CREASE_FOLLOW * (q[lid] - rest[lid])
            for i in range(17, 27):  # brows follow slightly
                q[i, 1] += blink * 0.015 * self.eye_distance
        points = self.src.copy()
        points[:68] = q @ self.axes + self.mouth_origin
        points[68 : self.num_face] = creases @ self.axes + self.mouth_origin
        # --- head: similarity transform of the landmarks and the head ring about the neck
        angle, scale, dx, dy = head
        n = self.num_face + self.num_ring
        points[:n] = self.head_pivot + scale * (points[:n] - self.head_pivot) @ _rotation(angle).T + [dx, dy]
        return points

    # ------------------------------------------------------------------ render

    def render(self, points: np.ndarray) -> np.ndarray:
        """The portrait warped so that ``self.src`` lands on ``points``, mouth painted."""
        import cv2

        src_tri = self.src[self.triangles]  # (K, 3, 2)
        dst_tri = points[self.triangles]
        a = np.concatenate([dst_tri, np.ones((len(dst_tri), 3, 1))], axis=2)
        det = np.linalg.det(a)
        ok = np.abs(det) > 1e-3
        affine = np.zeros((len(a) + 1, 3, 2))
        affine[-1] = [[1, 0], [0, 1], [0, 0]]  # identity for uncovered pixels
        affine[np.nonzero(ok)[0]] = np.linalg.solve(a[ok], src_tri[ok])
        ids = np.full((self.size, self.size), len(a), np.int32)
        shift = 4
        fixed = np.round(dst_tri * (1 << shift)).astype(np.int32)
        for k in np.nonzero(ok)[0]:
            cv2.fillConvexPoly(ids, fixed[k], int(k), lineType=cv2.LINE_8, shift=shift)
        m = affine[ids.ravel()].astype(np.float32)  # (P, 3, 2)
        xs, ys = self._grid
        map_x = (m[:, 0, 0] * xs + m[:, 1, 0] * ys + m[:, 2, 0]).reshape(self.size, self.size)
        map_y = (m[:, 0, 1] * xs + m[:, 1, 1] * ys + m[:, 2, 1]).reshape(self.size, self.size)
        frame = cv2.remap(self.base, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        self._paint_mouth(frame, points)
        return frame

    def _paint_mouth(self, frame: np.ndarray, points: np.ndarray) -> None:
        """Dark cavity inside the inner lips (a smooth curve through them), upper teeth under the upper lip.

        Colours come from the portrait's own lips, so the mouth matches its lighting.
        """
        import cv2

        opening = float(np.mean([np.linalg.norm(points[lo] - points[up]) for up, lo in _PAIRS_INNER]))
        alpha = float(np.clip((opening - 0.8) / 2.5, 0.0, 1.0))
        if alpha <= 0:
            return
        inner = _closed_spline(points[60:68])
        x0, y0 = np.floor(inner.min(0)).astype(int) - 3
        x1, y1 = np.ceil(inner.max(0)).astype(int) + 4
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, self.size), min(y1, self.size)
        if x1 <= x0 or y1 <= y0:
            return
        shift, s = 3, 8.0
        origin = np.array([x0, y0])

        def polygon_mask(poly: np.ndarray) -> np.ndarray:
            mask = np.zeros((y1 - y0, x1 - x0), np.float32)
            cv2.fillPoly(mask, [np.round((poly - origin) * s).astype(np.int32)], 1.0, cv2.LINE_AA, shift)
            return mask

        cavity = polygon_mask(inner)
        # Teeth: a band under the upper inner lip, narrower than the mouth, soft lower edge.
        n_upper = (len(inner) // 2) + 1  # the spline's first half runs 60 -> 64 along the upper lip
        upper = inner[:n_upper]
        centre = points[[60, 64]].mean(0)
        down = self.axes[1]
        depth = min(0.09 * self.mouth_width, 0.4 * opening)
        top = centre + (upper - centre) * [0.86, 1.0]
        band = np.concatenate([top - 0.5 * down, (top + depth * down)[::-1]])
        teeth = cv2.GaussianBlur(polygon_mask(band), (3, 3), 0.8) * cavity
        region = frame[y0:y1, x0:x1].astype(np.float32)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        # Cavity: the lip colour, very dark, darkest in the middle.
        d = np.hypot((xx - centre[0]) / (0.5 * self.mouth_width + 1e-6), (yy - centre[1]) / (opening + 1e-6))
        dark = self.lip_colour * (0.26 - 0.14 * np.clip(1.0 - d, 0.0, 1.0))[..., None]
        # Teeth: off-white tinted by the skin light, shaded towards the corners.
        horizontal = np.clip(1.0 - np.abs(xx - centre[0]) / (0.65 * self.mouth_width + 1e-6), 0.0, 1.0)[..., None]
        tooth = self.tooth_colour * (0.7 + 0.3 * horizontal)
        a_cav = (alpha * cavity)[..., None]
        a_teeth = (alpha * teeth * 0.95)[..., None]
        region = region * (1 - a_cav) + dark * a_cav
        region = region * (1 - a_teeth) + tooth * a_teeth
        frame[y0:y1, x0:x1] = np.clip(region, 0, 255).astype(np.uint8)


def _closed_spline(points: np.ndarray, steps: int = 6) -> np.ndarray:
    """Closed Catmull-Rom curve through ``points`` (``steps`` samples per segment, first point first)."""
    p0, p1 = np.roll(points, 1, 0), points
    p2, p3 = np.roll(points, -1, 0), np.roll(points, -2, 0)
    t = (np.arange(steps) / steps)[:, None, None]
    curve = 0.5 * (
        2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
    )
    return curve.transpose(1, 0, 2).reshape(-1, 2)


def _face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit x (along the eyes) and y (down the face) axes of (..., 68, 2) landmarks."""
    ex = landmarks[..., 42:48, :].mean(-2) - landmarks[..., 36:42, :].mean(-2)
    ex = ex / np.linalg.norm(ex, axis=-1, keepdims=True)
    return ex, np.stack([-ex[..., 1], ex[..., 0]], -1)


def inner_lip_gap(landmarks: np.ndarray) -> np.ndarray:
    """Lip opening in pixels, (...,): mean distance across the eye line between paired inner-lip points."""
    _, ey = _face_frame(landmarks)
    gaps = [np.sum((landmarks[..., lo, :] - landmarks[..., up, :]) * ey, -1) for up, lo in _PAIRS_INNER]
    return np.mean(gaps, axis=0)


def mouth_width(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the outer mouth corners (48, 54) in pixels, (...,)."""
    return np.linalg.norm(landmarks[..., 54, :] - landmarks[..., 48, :], axis=-1)


def jaw_opening(landmarks: np.ndarray) -> np.ndarray:
    """Nose tip (33) to chin (8) across the eye line, in pixels, (...,)."""
    _, ey = _face_frame(landmarks)
    return np.sum((landmarks[..., 8, :] - landmarks[..., 33, :]) * ey, -1)


# ============================================================================ Clip planning


@dataclasses.dataclass(frozen=True, eq=False)
class ClipPlan:
    """Everything about a clip except its pixels: speech and per-frame motion."""

    clip_id: str
    speech: Speech
    segments: tuple[VisemeSegment, ...]
    articulation: np.ndarray  # (T, 5)
    blink: np.ndarray  # (T,)
    head: np.ndarray  # (T, 4): angle (rad), scale, dx, dy (pixels)
    seed: int

    @property
    def num_frames(self) -> int:
        return len(self.blink)


def clip_rng(seed: int, speaker: str, index: int) -> np.random.Generator:
    """Per-clip RNG: stable across runs, processes and the number of clips requested."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(speaker.encode()), int(index)])


def _split_sentences(text: str) -> list[str]:
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+", text.strip()) if p.strip()]
    return parts or [text]


def compose_speech(
    rng: np.random.Generator, seconds: float, voice: str, rate: int, pitch: int, text: str | None = None
) -> Speech:
    """Speech of about ``seconds``: given ``text``, or sentences picked to fill the time.

    Sentences are added while they fit (within 0.5 s over); the rest is topped up
    with a short phrase or trailing silence, so clips land close to ``seconds``.
    """
    lead = float(rng.uniform(0.05, 0.25))
    if text is not None:
        parts = [speak(s, voice, rate, pitch) for s in _split_sentences(text)]
        pauses = [float(rng.uniform(0.15, 0.35)) for _ in parts[:-1]]
        return concatenate_speech(parts, pauses, lead, total=seconds)
    parts: list[Speech] = []
    pauses: list[float] = []
    total = lead
    pools = ((SENTENCES, 8), (SHORT_PHRASES, 6))
    for pool, tries in pools if seconds >= 2.0 else pools[::-1]:  # short clips: short phrases first
        order = rng.permutation(len(pool))
        for i in order[:tries]:
            pause = float(rng.uniform(0.15, 0.35))
            if total >= seconds - 0.4:
                break
            candidate = speak(pool[i], voice, rate, pitch)
            extra = (pause if parts else 0.0) + candidate.duration
            if parts and total + extra > seconds + 0.5:
                continue
            if parts:
                pauses.append(pause)
            parts.append(candidate)
            total += extra
    return concatenate_speech(parts, pauses, lead, total=seconds)


def blink_track(rng: np.random.Generator, num_frames: int, fps: float = audio_lib.FPS) -> np.ndarray:
    """Eyelid closure per frame: blinks every 2-6 s, ~150 ms, peak on a frame centre."""
    times = frame_times(num_frames, fps)
    closure = np.zeros(num_frames)
    t = float(rng.uniform(0.4, 2.5))
    end = times[-1] + 0.2 if num_frames else 0.0
    while t < end:
        peak = (math.floor(t * fps) + 0.5) / fps  # a frame centre sees the eye fully closed
        close, opening = float(rng.uniform(0.05, 0.07)), float(rng.uniform(0.08, 0.11))
        before = np.clip(1 - (peak - times) / close, 0, 1)
        after = np.clip(1 - (times - peak) / opening, 0, 1)
        shape = np.where(times <= peak, before, after)
        closure = np.maximum(closure, np.sin(0.5 * np.pi * shape) ** 2)
        t = peak + float(rng.uniform(2.0, 6.0))
    return closure


def head_track(rng: np.random.Generator, num_frames: int, size: int, fps: float = audio_lib.FPS) -> np.ndarray:
    """Smooth small head motion per frame: (angle rad, scale, dx px, dy px), sums of slow sines."""
    times = frame_times(num_frames, fps)
    amplitudes = (math.radians(2.0), 0.015, 0.012 * size, 0.01 * size)
    out = np.zeros((num_frames, 4))
    for j, amp in enumerate(amplitudes):
        for _ in range(3):
            freq, phase = rng.uniform(0.1, 0.6), rng.uniform(0, 2 * np.pi)
            out[:, j] += amp / 3 * rng.uniform(0.5, 1.5) * np.sin(2 * np.pi * freq * times + phase)
    out[:, 1] += 1.0
    return out


def plan_clip(
    speaker: str,
    seed: int = 0,
    index: int = 0,
    *,
    seconds: float = 3.0,
    size: int = 256,
    text: str | None = None,
    voice: str | None = None,
    rate: int | None = None,
    pitch: int | None = None,
    clip_id: str | None = None,
) -> ClipPlan:
    """Speech, articulation, blinks and head motion of clip ``index`` of ``speaker``.

    Unset voice/rate/pitch are drawn from the clip's RNG (so clips vary).
    """
    rng = clip_rng(seed, speaker, index)
    language = VOICE_LANGUAGES[int(rng.integers(len(VOICE_LANGUAGES)))]
    variant = VOICE_VARIANTS[int(rng.integers(len(VOICE_VARIANTS)))]
    drawn_rate = int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1))
    drawn_pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
    voice = voice or f"{language}+{variant}"
    rate = drawn_rate if rate is None else rate
    pitch = drawn_pitch if pitch is None else pitch
    # Separate streams, so that e.g. a different text does not change the blinks.
    speech_rng, style_rng, blink_rng, head_rng = (np.random.default_rng(s) for s in rng.bit_generator.seed_seq.spawn(4))
    speech = compose_speech(speech_rng, seconds, voice, rate, pitch, text)
    segments = viseme_segments(speech)
    frames = audio_lib.num_frames(len(speech.waveform))
    scale = float(style_rng.uniform(0.85, 1.15))
    jitter = style_rng.uniform(0.9, 1.1, len(segments))
    articulation = articulation_track(segments, frame_times(frames), speech.duration, scale, jitter)
    return ClipPlan(
        clip_id or f"clip_{index:03d}",
        speech,
        tuple(segments),
        articulation,
        blink_track(blink_rng, frames),
        head_track(head_rng, frames, size),
        int(seed),
    )


# ============================================================================ Rendering clips


@dataclasses.dataclass(frozen=True, eq=False)
class Clip:
    """A rendered clip: files (when written), ground truth and, optionally, its frames."""

    speaker: str
    clip_id: str
    video_path: Path | None
    json_path: Path | None
    landmarks: np.ndarray  # (T, 68, 2) output pixels
    waveform: np.ndarray  # float32 at SAMPLE_RATE
    metadata: dict
    frames: np.ndarray | None = None  # (T, size, size, 3) uint8 when kept

    @property
    def num_frames(self) -> int:
        return len(self.landmarks)


@functools.lru_cache(maxsize=8)
def _rig(portrait: Portrait, size: int) -> FaceRig:
    return FaceRig(portrait, size)


def render_frames(rig: FaceRig, plan: ClipPlan) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frame, landmarks) for every frame of ``plan``."""
    for t in range(plan.num_frames):
        points = rig.pose(plan.articulation[t], float(plan.blink[t]), plan.head[t])
        yield rig.render(points), points[:68].astype(np.float32)


def _r(values: np.ndarray, digits: int) -> list:
    return np.round(np.asarray(values, np.float64), digits).tolist()


def clip_metadata(portrait: Portrait, plan: ClipPlan, landmarks: np.ndarray, size: int) -> dict:
    """The ground-truth JSON of a clip."""
    speech = plan.speech
    return {
        "format": "keras_s2v.synth/1",
        "speaker": portrait.name,
        "clip_id": plan.clip_id,
        "portrait": portrait.source,
        "text": speech.text,
        "voice": speech.voice,
        "rate": speech.rate,
        "pitch": speech.pitch,
        "seed": plan.seed,
        "fps": audio_lib.FPS,
        "sample_rate": audio_lib.SAMPLE_RATE,
        "num_frames": int(len(landmarks)),
        "num_samples": int(len(speech.waveform)),
        "duration": round(speech.duration, 6),
        "width": size,
        "height": size,
        "landmarks": _r(landmarks, 2),  # frames x 68 x 2, output pixels (integer = pixel centre)
        "phonemes": [
            {
                "phoneme": p.symbol,
                "start": round(p.start, 4),
                "end": round(p.end, 4),
                "visemes": list(phoneme_visemes(p.symbol)),
            }
            for p in speech.phonemes
        ],
        "visemes": [
            {"viseme": s.viseme, "start": round(s.start, 4), "end": round(s.end, 4), "phoneme": s.phoneme}
            for s in plan.segments
        ],
        "articulation": {name: _r(plan.articulation[:, j], 4) for j, name in enumerate(ARTICULATION_PARAMS)},
        "blink": _r(plan.blink, 3),
        "head": {
            "angle_deg": _r(np.degrees(plan.head[:, 0]), 3),
            "scale": _r(plan.head[:, 1], 4),
            "dx": _r(plan.head[:, 2], 2),
            "dy": _r(plan.head[:, 3], 2),
        },
    }


def _check_size(size: int) -> None:
    if size < 32 or size % 2:
        raise ValueError(f"size must be an even number of pixels >= 32 (H.264 needs even sides), got {size}")


def _as_portrait(portrait: Portrait | str | os.PathLike) -> Portrait:
    return portrait if isinstance(portrait, Portrait) else load_portrait(portrait)


def synthesize_clip(
    portrait: Portrait | str | os.PathLike,
    *,
    seconds: float = 3.0,
    size: int = 256,
    seed: int = 0,
    index: int = 0,
    text: str | None = None,
    voice: str | None = None,
    rate: int | None = None,
    pitch: int | None = None,
    clip_id: str | None = None,
) -> Clip:
    """A clip in memory (frames kept, no files): for tests and previews."""
    portrait = _as_portrait(portrait)
    plan = plan_clip(
        portrait.name,
        seed,
        index,
        seconds=seconds,
        size=size,
        text=text,
        voice=voice,
        rate=rate,
        pitch=pitch,
        clip_id=clip_id,
    )
    frames, landmarks = zip(*render_frames(_rig(portrait, size), plan)) if plan.num_frames else ((), ())
    landmarks = np.array(landmarks, np.float32).reshape(-1, 68, 2)
    return Clip(
        portrait.name,
        plan.clip_id,
        None,
        None,
        landmarks,
        plan.speech.waveform,
        clip_metadata(portrait, plan, landmarks, size),
        np.array(frames, np.uint8),
    )


def render_clip(
    portrait: Portrait | str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    seconds: float = 3.0,
    size: int = 256,
    seed: int = 0,
    index: int = 0,
    text: str | None = None,
    voice: str | None = None,
    rate: int | None = None,
    pitch: int | None = None,
    overwrite: bool = False,
    keep_frames: bool = False,
) -> Clip:
    """Render one clip to ``out_path`` (.mp4, audio muxed) plus its ground truth beside it (.json).

    ``portrait`` is a Portrait, an image path or a default name ("astronaut").
    Raises FileExistsError (before rendering) if either file exists and not ``overwrite``.
    """
    _check_size(size)
    portrait = _as_portrait(portrait)
    video = Path(out_path)
    if video.suffix.lower() != ".mp4":
        video = video.with_suffix(".mp4")
    meta_path = video.with_suffix(".json")
    for path in (video, meta_path):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path}: already exists (pass overwrite=True / --overwrite to replace it)")
    plan = plan_clip(
        portrait.name,
        seed,
        index,
        seconds=seconds,
        size=size,
        text=text,
        voice=voice,
        rate=rate,
        pitch=pitch,
        clip_id=video.stem,
    )
    rig = _rig(portrait, size)
    landmarks = np.zeros((plan.num_frames, 68, 2), np.float32)
    kept = np.zeros((plan.num_frames, size, size, 3), np.uint8) if keep_frames else None
    with media.VideoWriter(
        video,
        size,
        size,
        audio_lib.FPS,
        audio=plan.speech.waveform,
        sample_rate=audio_lib.SAMPLE_RATE,
        overwrite=overwrite,
    ) as writer:
        for t, (frame, points) in enumerate(render_frames(rig, plan)):
            writer.write(frame)
            landmarks[t] = points
            if kept is not None:
                kept[t] = frame
    metadata = clip_metadata(portrait, plan, landmarks, size)
    with media.atomic_output(meta_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(metadata, separators=(",", ":")))
    return Clip(portrait.name, plan.clip_id, video, meta_path, landmarks, plan.speech.waveform, metadata, kept)


# ============================================================================ Corpus


@dataclasses.dataclass
class CorpusSummary:
    """What ``make_corpus`` did."""

    out_dir: Path
    index_path: Path
    written: list[str] = dataclasses.field(default_factory=list)  # "speaker/clip_id"
    skipped_existing: list[str] = dataclasses.field(default_factory=list)
    skipped_portraits: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (file, reason)
    total_seconds: float = 0.0  # audio rendered in this run
    elapsed: float = 0.0  # wall-clock seconds

    @property
    def num_clips(self) -> int:
        return len(self.written) + len(self.skipped_existing)


def _unique_names(portraits: list[Portrait]) -> list[Portrait]:
    seen: dict[str, int] = {}
    out = []
    for p in portraits:
        name = p.name
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[p.name]}"
        seen.setdefault(name, 0)
        out.append(p if name == p.name else dataclasses.replace(p, name=name))
    return out


def make_corpus(
    out_dir: str | os.PathLike,
    *,
    portraits: Sequence[Portrait | str | os.PathLike] = (),
    portrait_dir: str | os.PathLike | None = None,
    include_default_portraits: bool = True,
    num_clips: int = 4,
    seconds: float = 4.0,
    size: int = 256,
    seed: int = 0,
    overwrite: bool = False,
    detector: str = "dlib",
    log: Callable[[str], None] | None = print,
) -> CorpusSummary:
    """Render ``num_clips`` clips per portrait into ``out_dir/<speaker>/<clip_id>.mp4|.json``.

    Portraits: the defaults (astronaut, Grace Hopper) unless excluded, then
    ``portraits``, then every image in ``portrait_dir``; an image without a
    face is reported (file name and reason) and skipped. Existing clips are
    kept and skipped unless ``overwrite``; ``corpus.json`` is rewritten to
    list every clip of this run plus clips of earlier runs still on disk.
    """
    _check_size(size)
    start = time.perf_counter()
    say = log or (lambda message: None)
    out_dir = Path(out_dir)
    summary = CorpusSummary(out_dir, out_dir / "corpus.json")
    loaded: list[Portrait] = []
    sources: list[Portrait | str | os.PathLike] = list(DEFAULT_PORTRAITS if include_default_portraits else ())
    sources += list(portraits)
    if portrait_dir is not None:
        sources += portrait_files(portrait_dir)
    for source in sources:
        try:
            loaded.append(source if isinstance(source, Portrait) else load_portrait(source, detector=detector))
        except (NoFaceError, media.MediaError) as error:
            summary.skipped_portraits.append((error.path, error.problem))
            say(f"skipping portrait {error.path}: {error.problem}")
    if not loaded:
        if summary.skipped_portraits:
            raise ValueError("no usable portrait: " + "; ".join(f"{p}: {r}" for p, r in summary.skipped_portraits))
        raise ValueError("no portrait given (pass --portraits DIR or keep --include_default_portraits)")
    entries: dict[str, dict] = {}
    for portrait in _unique_names(loaded):
        for index in range(num_clips):
            clip_id = f"clip_{index:03d}"
            key = f"{portrait.name}/{clip_id}"
            video = out_dir / portrait.name / f"{clip_id}.mp4"
            meta_path = video.with_suffix(".json")
            if not overwrite and (video.exists() or meta_path.exists()):
                if not (video.exists() and meta_path.exists()):
                    raise FileExistsError(
                        f"{video.parent}: {clip_id} is incomplete (one of .mp4/.json missing); "
                        "delete it or pass --overwrite"
                    )
                summary.skipped_existing.append(key)
                say(f"exists, skipped: {key} (pass --overwrite to replace)")
                entries[key] = _index_entry(out_dir, json.loads(meta_path.read_text()), video, meta_path)
                continue
            clip = render_clip(portrait, video, seconds=seconds, size=size, seed=seed, index=index, overwrite=overwrite)
            summary.written.append(key)
            summary.total_seconds += len(clip.waveform) / audio_lib.SAMPLE_RATE
            entries[key] = _index_entry(out_dir, clip.metadata, video, meta_path)
            say(f"wrote {key}.mp4 ({clip.num_frames} frames, {clip.metadata['voice']}): {clip.metadata['text']}")
    _write_index(summary.index_path, entries, seed, size)
    summary.elapsed = time.perf_counter() - start
    return summary


def _index_entry(root: Path, meta: dict, video: Path, meta_path: Path) -> dict:
    return {
        "speaker": meta["speaker"],
        "clip_id": meta["clip_id"],
        "video": video.relative_to(root).as_posix(),
        "ground_truth": meta_path.relative_to(root).as_posix(),
        "num_frames": meta["num_frames"],
        "duration": meta["duration"],
        "text": meta["text"],
        "voice": meta["voice"],
        "seed": meta["seed"],
    }


def _write_index(path: Path, entries: dict[str, dict], seed: int, size: int) -> None:
    if path.exists():
        try:  # keep clips of earlier runs that are still on disk
            for old in json.loads(path.read_text()).get("clips", []):
                key = f"{old['speaker']}/{old['clip_id']}"
                if key not in entries and (path.parent / old["video"]).exists():
                    entries[key] = old
        except (ValueError, KeyError, TypeError):
            pass
    index = {
        "format": "keras_s2v.synth.corpus/1",
        "fps": audio_lib.FPS,
        "sample_rate": audio_lib.SAMPLE_RATE,
        "seed": seed,
        "size": size,
        "speakers": sorted({e["speaker"] for e in entries.values()}),
        "clips": [entries[k] for k in sorted(entries)],
    }
    with media.atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(index, indent=1))


def summary_text(summary: CorpusSummary) -> str:
    """A few lines for the CLI."""
    lines = [
        f"{summary.out_dir}: {len(summary.written)} clips written, {len(summary.skipped_existing)} existing "
        f"kept, {summary.total_seconds:.1f} s of video in {summary.elapsed:.1f} s",
        f"index: {summary.index_path}",
    ]
    lines += [f"skipped portrait {path}: {reason}" for path, reason in summary.skipped_portraits]
    return "\n".join(lines)


__all__ = [
    "ARTICULATION_PARAMS",
    "Clip",
    "ClipPlan",
    "CorpusSummary",
    "DEFAULT_PORTRAITS",
    "EspeakError",
    "FaceRig",
    "NoFaceError",
    "PHONEME_VISEMES",
    "Phoneme",
    "Portrait",
    "SENTENCES",
    "Speech",
    "VISEMES",
    "Viseme",
    "VisemeSegment",
    "articulation_track",
    "blink_track",
    "clip_metadata",
    "compose_speech",
    "concatenate_speech",
    "frame_times",
    "head_track",
    "inner_lip_gap",
    "jaw_opening",
    "load_portrait",
    "make_corpus",
    "mouth_width",
    "phoneme_visemes",
    "plan_clip",
    "portrait_files",
    "render_clip",
    "render_frames",
    "speak",
    "summary_text",
    "synthesize_clip",
    "viseme_segments",
]
