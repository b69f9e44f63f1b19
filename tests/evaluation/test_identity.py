"""ACD (identity distance) with dlib's face-recognition ResNet, on real clips of different people."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from keras_s2v.data import media as media_io
from keras_s2v.data.face import FaceAnalyzer, align, largest_face
from keras_s2v.evaluation.identity import SAME_PERSON_THRESHOLD, FaceDescriptor, average_content_distance

# One talking-head clip per person (MANIFEST.tsv); hdtf_aoc and vr_woman_flag are both AOC.
CLIPS = ["hdtf_aoc", "hdtf_katiehill", "may_5s", "st_obama_1", "vr_man_suit"]
FRAMES = (0, 100)  # at 25 fps: 4 s apart
CROP = 112


@pytest.fixture(scope="module")
def descriptor() -> FaceDescriptor:
    return FaceDescriptor()


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer()


def read_frames(path, indices) -> list[np.ndarray]:
    """Frames at these indices of the 25 fps stream, as the evaluation reads videos."""
    wanted = set(indices)
    frames = {
        i: f
        for i, f in enumerate(itertools.islice(media_io.iter_frames(path, fps=25.0), max(indices) + 1))
        if i in wanted
    }
    assert sorted(frames) == sorted(wanted), f"{path}: has fewer than {max(indices) + 1} frames"
    return [frames[i] for i in indices]


@pytest.fixture(scope="module")
def faces(media, analyzer):
    """{clip: [(frame, frame landmarks, 112 px aligned crop, crop landmarks), ...]} for FRAMES."""
    out = {}
    for clip in [*CLIPS, "vr_woman_flag"]:
        out[clip] = []
        for frame in read_frames(media / "clips" / f"{clip}.mp4", FRAMES):
            found = analyzer.analyze(frame)
            assert found, f"no face in {clip}"
            landmarks = largest_face(found).landmarks
            crop, crop_landmarks, _ = align.align_face(frame, landmarks, size=CROP)
            out[clip].append((frame, landmarks, crop, crop_landmarks))
    return out


@pytest.fixture(scope="module")
def crop_descriptors(faces, descriptor) -> dict[str, np.ndarray]:
    """{clip: (len(FRAMES), 128)} descriptors of the aligned crops, in one batch."""
    clips = list(faces)
    crops = [f[2] for clip in clips for f in faces[clip]]
    landmarks = np.stack([f[3] for clip in clips for f in faces[clip]])
    desc = descriptor.describe(crops, landmarks)
    assert desc.shape == (len(crops), 128) and desc.dtype == np.float32
    assert np.all(np.isfinite(desc))
    return dict(zip(clips, np.split(desc, len(clips))))


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)


def test_same_clip_closer_than_other_people(crop_descriptors):
    """Within a clip (frames 4 s apart) the faces are closer than to any frame of anyone else."""
    matrix = np.array(
        [
            [
                distances(crop_descriptors[a], crop_descriptors[b])[np.triu_indices(len(FRAMES), 1)].mean()
                if a == b
                else distances(crop_descriptors[a], crop_descriptors[b]).mean()
                for b in CLIPS
            ]
            for a in CLIPS
        ]
    )
    print("\nmean descriptor distance (diagonal: between the clip's own frames)")
    print(" " * 16 + " ".join(f"{c[:14]:>14s}" for c in CLIPS))
    for clip, row in zip(CLIPS, matrix):
        print(f"{clip:16s}" + " ".join(f"{v:14.3f}" for v in row))
    for clip in CLIPS:
        own = crop_descriptors[clip]
        within = distances(own, own)[np.triu_indices(len(FRAMES), 1)]
        assert np.all(within < SAME_PERSON_THRESHOLD), (clip, within)
        for other in CLIPS:
            if other != clip:
                across = distances(own, crop_descriptors[other])
                assert within.max() < across.min(), (clip, other, within, across)


def test_same_person_in_another_video(crop_descriptors):
    """AOC in the HDTF clip and in the video-retalking clip reads as the same person."""
    across = distances(crop_descriptors["hdtf_aoc"], crop_descriptors["vr_woman_flag"])
    assert np.all(across < SAME_PERSON_THRESHOLD), across
    acd = average_content_distance(crop_descriptors["hdtf_aoc"][0], crop_descriptors["vr_woman_flag"])
    assert acd < SAME_PERSON_THRESHOLD
    others = np.concatenate([crop_descriptors[c] for c in CLIPS if c != "hdtf_aoc"])
    assert acd < average_content_distance(crop_descriptors["hdtf_aoc"][0], others)


def test_crop_and_full_frame_agree(faces, descriptor):
    """The aligned 112 px crop and the whole frame give nearly the same descriptor."""
    for clip in ("may_5s", "st_obama_1"):
        frame, landmarks, crop, crop_landmarks = faces[clip][0]
        from_crop = descriptor.describe_one(crop, crop_landmarks)
        from_frame = descriptor.describe_one(frame, landmarks)
        gap = float(np.linalg.norm(from_crop - from_frame))
        print(f"\n{clip}: crop {CROP} px vs frame {frame.shape[1]}x{frame.shape[0]}: distance {gap:.3f}")
        assert gap < 0.25, (clip, gap)


def test_face_at_the_border_is_padded_not_blacked_out(faces, descriptor):
    """A chip reaching outside the image sees replicated edges, as if the image were larger."""
    _, _, crop, crop_landmarks = faces["st_obama_1"][0]
    cut, cut_landmarks = crop[20:, 16:], crop_landmarks - np.float32([16, 20])  # brows near the top edge
    pad = 60
    padded = cv2.copyMakeBorder(cut, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    a = descriptor.describe_one(cut, cut_landmarks)
    b = descriptor.describe_one(padded, cut_landmarks + pad)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_average_content_distance():
    reference = np.zeros(128, np.float32)
    frames = np.zeros((3, 128), np.float32)
    frames[0, 0], frames[1, 5], frames[2, :4] = 0.3, -0.6, 0.45  # norms 0.3, 0.6, 0.9
    assert average_content_distance(reference, frames) == pytest.approx(0.6)
    assert average_content_distance(frames[1], frames[1:2]) == 0.0
    with pytest.raises(ValueError, match=r"\(N, 128\)"):
        average_content_distance(reference, np.zeros((0, 128)))
    with pytest.raises(ValueError, match=r"reference"):
        average_content_distance(frames, frames)


def test_bad_input(descriptor):
    image = np.zeros((112, 112, 3), np.uint8)
    landmarks = align.canonical_landmarks(112)
    with pytest.raises(ValueError, match=r"landmarks must have shape \(N, 68, 2\).*got \(1, 5, 2\)"):
        descriptor.describe([image], np.zeros((1, 5, 2)))
    with pytest.raises(ValueError, match=r"landmarks must have shape \(N, 68, 2\).*got \(68, 2\)"):
        descriptor.describe([image], landmarks)
    with pytest.raises(ValueError, match=r"landmarks must have shape \(68, 2\).*got \(68, 3\)"):
        descriptor.describe_one(image, np.zeros((68, 3)))
    with pytest.raises(ValueError, match=r"2 images but 1 sets of landmarks"):
        descriptor.describe([image, image], landmarks[None])
    with pytest.raises(ValueError, match=r"NaN"):
        descriptor.describe_one(image, np.full((68, 2), np.nan))
    assert descriptor.describe([], np.zeros((0, 68, 2))).shape == (0, 128)


def test_missing_model_names_file_and_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.dat.*make install"):
        FaceDescriptor(model_file=tmp_path / "missing.dat")
