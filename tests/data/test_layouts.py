"""Speaker ids and per-speaker splits from dataset layouts."""

import pytest

from keras_s2v.data import layouts
from keras_s2v.data.layouts import ClipOrigin, identify, read_split_table


@pytest.mark.parametrize(
    "relative, speaker, layout",
    [
        ("id10001/1zcIwhmdeo4/00001.mp4", "id10001", "voxceleb"),
        ("dev/mp4/id00012/21Uxsk56VDQ/00001.mp4", "id00012", "voxceleb"),
        ("s12/video/bbaf2n.mpg", "s12", "grid"),
        ("trainval/0af00UcTOSc/50001.mp4", "0af00UcTOSc", "lrs3"),
        ("main/5535415699068794046/00001.mp4", "5535415699068794046", "lrs2"),
        ("alice/interview.mp4", "alice", "folder"),
        ("talk.mp4", "talk", "file"),
    ],
)
def test_speaker_from_layout(relative, speaker, layout):
    origin = layouts.identify(relative)
    assert (origin.speaker, origin.layout) == (speaker, layout)
    assert origin.split in ("train", "validation", "test")


def test_datasets_own_splits_are_kept():
    assert layouts.identify("ABOUT/val/ABOUT_00001.mp4").split == "validation"
    assert layouts.identify("ABOUT/test/ABOUT_00042.mp4").split == "test"
    assert layouts.identify("ABOUT/train/ABOUT_00007.mp4").layout == "lrw"
    assert layouts.identify("test/0Fi83BHQsMA/00002.mp4").split == "test"


def test_split_is_per_speaker_and_stable():
    clips = [f"id{n:05d}/video{k}/0000{k}.mp4" for n in range(200) for k in range(3)]
    by_speaker = {}
    for clip in clips:
        origin = layouts.identify(clip)
        by_speaker.setdefault(origin.speaker, set()).add(origin.split)
    assert all(len(splits) == 1 for splits in by_speaker.values())
    counts = {s: sum(v == {s} for v in by_speaker.values()) for s in ("train", "validation", "test")}
    assert counts["train"] > 120 and counts["validation"] > 5 and counts["test"] > 5
    assert layouts.identify("id00001/a/1.mp4") == layouts.identify("id00001/b/2.mp4")


def test_speaker_from_pattern_and_forced_split():
    origin = layouts.identify("2024/bob_take3.mp4", speaker_from=r"(?P<speaker>[a-z]+)_take", forced_split="test")
    assert (origin.speaker, origin.split, origin.layout) == ("bob", "test", "speaker_from")
    with pytest.raises(ValueError, match="does not match"):
        layouts.identify("x.mp4", speaker_from=r"nomatch(\d+)")
    with pytest.raises(ValueError, match="split must be one of"):
        layouts.identify("x.mp4", forced_split="dev")


def test_a_split_table_decides_speaker_and_split(tmp_path):
    table = tmp_path / "split.tsv"
    table.write_text(
        "# comment\nfile\tspeaker\tsplit\ncorpus/a.mp4\tann\ttrain\ncorpus/b.mp4\tann\ttrain\nclips/c.mp4\tbob\ttest\n"
    )
    assert identify("a.mp4", split_table=str(table)) == ClipOrigin("ann", "train", "split_table")
    assert identify("clips/c.mp4", split_table=str(table)) == ClipOrigin("bob", "test", "split_table")
    with pytest.raises(ValueError, match="d.mp4 is not in"):
        identify("d.mp4", split_table=str(table))
    bad = tmp_path / "bad.tsv"
    bad.write_text("file\tspeaker\tsplit\na.mp4\tann\ttrain\nb.mp4\tann\ttest\n")
    with pytest.raises(ValueError, match="speaker 'ann' is in both train and test"):
        read_split_table(str(bad))


def test_the_presets_split_holds_out_whole_speakers():
    from pathlib import Path

    import keras_s2v

    table = read_split_table(str(Path(keras_s2v.__file__).parent / "pretrained" / "real_split.tsv"))
    splits = {split for _, split in table.values()}
    assert splits == {"train", "validation", "test"}
    assert all(file.startswith(("corpus/", "clips/")) for file in table)
