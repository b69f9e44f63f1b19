"""Shot boundaries, track linking and the active-speaker choice."""

import numpy as np

from keras_s2v.data import media as media_io
from keras_s2v.data import shots, tracks
from keras_s2v.data.face import align


def test_cut_between_two_real_clips_and_none_inside(media):
    first = list(media_frames(media / "clips/hdtf_katiehill.mp4", 30))  # strong head motion
    second = list(media_frames(media / "clips/vr_man_worldmap.mp4", 10))
    detector = shots.ShotDetector()
    ids = [detector.update(f) for f in first + second]
    assert ids[:30] == [0] * 30 and ids[30:] == [1] * 10


def media_frames(path, count):
    import cv2

    for i, frame in enumerate(media_io.iter_frames(path)):
        if i == count:
            return
        yield cv2.resize(frame, (256, 256))


class _Face:
    def __init__(self, box, landmarks):
        self.box, self.landmarks = box, landmarks


def _face_at(x, opening=0.0):
    points = align.canonical_landmarks(100) + np.float32([x, 50])
    points[66:68, 1] += opening  # lower inner lip
    points[56:59, 1] += opening
    return _Face((x + 10.0, 60.0, x + 90.0, 150.0), points.astype(np.float32))


def test_tracks_link_by_overlap_and_break_at_cuts_and_gaps():
    tracker = tracks.FaceTracker(crop_size=32)
    image = np.zeros((300, 600, 3), np.uint8)
    for t in range(10):
        shot = 0 if t < 6 else 1
        faces = [_face_at(50 + t), _face_at(400)] if t != 3 else [_face_at(50 + t)]
        tracker.update(t, shot, image, faces)
    lengths = sorted((tr.frame_index[0], len(tr)) for tr in tracker.tracks)
    # left face: frames 0-5 then a new track after the cut; right face: 0-2, gap at 3, 4-5, then 6-9.
    assert lengths == [(0, 3), (0, 6), (4, 2), (6, 4), (6, 4)]
    assert all(np.asarray(tr.crops).shape[1:] == (32, 32, 3) for tr in tracker.tracks)


def test_the_face_whose_mouth_follows_the_audio_is_the_speaker():
    rng = np.random.default_rng(0)
    energy = np.exp(rng.normal(size=60)).astype(np.float32)
    opening = 8 * (np.log(energy) - np.log(energy).min())
    tracker = tracks.FaceTracker(crop_size=32)
    image = np.zeros((300, 600, 3), np.uint8)
    for t in range(60):
        listener_mouth = 4 * rng.random()
        tracker.update(t, 0, image, [_face_at(50, opening[t]), _face_at(400, listener_mouth)])
    kept, dropped, scores = tracks.pick_active_speakers(tracker.tracks, energy)
    assert [t.track_id for t in kept] == [0] and [t.track_id for t in dropped] == [1]
    assert scores[0] > 0.9 > scores[1]
    # A face alone is kept whatever its score.
    alone, none, _ = tracks.pick_active_speakers(tracker.tracks[1:], energy)
    assert len(alone) == 1 and not none
