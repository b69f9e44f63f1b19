"""Face tracks: detections linked across frames, and the active speaker among them."""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_s2v.data.face import align


@dataclasses.dataclass
class Track:
    """Consecutive frames of one face inside one shot, already aligned."""

    track_id: int
    shot: int
    frame_index: list = dataclasses.field(default_factory=list)
    boxes: list = dataclasses.field(default_factory=list)
    source_landmarks: list = dataclasses.field(default_factory=list)
    crops: list = dataclasses.field(default_factory=list)
    landmarks: list = dataclasses.field(default_factory=list)
    transforms: list = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frame_index)

    @property
    def last_frame(self) -> int:
        return self.frame_index[-1]

    def add(self, frame_index, box, source_landmarks, crop, landmarks, transform):
        self.frame_index.append(frame_index)
        self.boxes.append(box)
        self.source_landmarks.append(source_landmarks)
        self.crops.append(crop)
        self.landmarks.append(landmarks)
        self.transforms.append(transform)


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Greedy IoU linking of each frame's faces to the tracks alive in the previous frame.

    A track ends at a shot cut or at the first frame its face is missing, so
    every track is a run of consecutive frames (what windowed training needs).
    """

    def __init__(self, crop_size: int = 112, iou_threshold: float = 0.3):
        self.crop_size = crop_size
        self.iou_threshold = iou_threshold
        self.tracks: list[Track] = []
        self._alive: list[Track] = []

    def update(self, frame_index: int, shot: int, frame_rgb: np.ndarray, faces) -> None:
        candidates = [t for t in self._alive if t.shot == shot and t.last_frame == frame_index - 1]
        pairs = sorted(
            ((box_iou(t.boxes[-1], f.box), ti, fi) for ti, t in enumerate(candidates) for fi, f in enumerate(faces)),
            reverse=True,
        )
        used_tracks, used_faces, alive = set(), set(), []
        assignment = {}
        for iou, ti, fi in pairs:
            if iou < self.iou_threshold or ti in used_tracks or fi in used_faces:
                continue
            used_tracks.add(ti)
            used_faces.add(fi)
            assignment[fi] = candidates[ti]
        for fi, face in enumerate(faces):
            track = assignment.get(fi)
            if track is None:
                track = Track(track_id=len(self.tracks), shot=shot)
                self.tracks.append(track)
            crop, landmarks, transform = align.align_face(frame_rgb, face.landmarks, self.crop_size)
            track.add(
                frame_index, tuple(map(float, face.box)), face.landmarks.astype(np.float32), crop, landmarks, transform
            )
            alive.append(track)
        self._alive = alive


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """(T,) inner-lip gap over the distance between the eyes: scale-free mouth opening."""
    gap = np.linalg.norm(landmarks[:, 62] - landmarks[:, 66], axis=-1)  # inner upper/lower lip centres
    eyes = align.eye_centres(landmarks)
    return gap / (np.linalg.norm(eyes[:, 0] - eyes[:, 1], axis=-1) + 1e-6)


def speaking_score(track: Track, frame_energy: np.ndarray) -> float:
    """Correlation of the track's mouth opening with the audio's frame energy (log RMS).

    A stand-in until the sync expert network can score tracks: speech opens
    the mouth when the audio is loud, a listener's mouth does not follow it.
    """
    frames = np.asarray(track.frame_index)
    frames = frames[frames < len(frame_energy)]
    if len(frames) < 3:
        return 0.0
    opening = mouth_opening(np.asarray(track.landmarks)[: len(frames)])
    energy = np.log(frame_energy[frames] + 1e-4)
    if opening.std() < 1e-6 or energy.std() < 1e-6:
        return 0.0
    return float(np.corrcoef(opening, energy)[0, 1])


def pick_active_speakers(
    tracks: list[Track], frame_energy: np.ndarray | None = None, min_overlap: float = 0.5, scores: dict | None = None
):
    """Split tracks into (kept, dropped, scores): a track is dropped when another
    track shares at least ``min_overlap`` of its frames and speaks more in step
    with the audio. A face alone in its frames is always kept.

    ``scores`` (track id -> higher is more in sync) come from the sync expert
    when one is trained; without them, ``speaking_score`` on ``frame_energy``.
    """
    if scores is None:
        scores = {t.track_id: speaking_score(t, frame_energy) for t in tracks}
    kept, dropped = [], []
    for track in tracks:
        own = set(track.frame_index)
        rivals = [
            other
            for other in tracks
            if other is not track and len(own & set(other.frame_index)) >= min_overlap * len(own)
        ]
        if any(scores[r.track_id] > scores[track.track_id] for r in rivals):
            dropped.append(track)
        else:
            kept.append(track)
    return kept, dropped, scores
