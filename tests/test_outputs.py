"""The output rules every command shares: never replace an input, only replace what the command made, check first."""

import os
import threading

import pytest

from keras_s2v import outputs
from keras_s2v.outputs import OutputError


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "face.jpg"
    path.write_bytes(b"my photo")
    return path


def unwritable_folder(tmp_path):
    """A folder nobody can create files in: read-only for a user, a read-only file system for root."""
    if os.geteuid() == 0:
        return "/proc"  # root ignores permission bits, not a read-only mount
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize("spelling", ["same", "relative", "symlink", "hardlink", "dotdot"])
def test_an_output_that_is_an_input_is_refused_even_with_overwrite(photo, tmp_path, monkeypatch, spelling):
    monkeypatch.chdir(tmp_path)
    out = {"same": photo, "relative": "face.jpg", "dotdot": tmp_path / "x" / ".." / "face.jpg"}.get(spelling)
    if spelling == "symlink":
        out = tmp_path / "link.jpg"
        out.symlink_to(photo)
    if spelling == "hardlink":
        out = tmp_path / "hard.jpg"
        os.link(photo, out)
    (tmp_path / "x").mkdir()
    with pytest.raises(OutputError, match="is also the input --face"):
        outputs.check_file(out, inputs=[("--face", photo)], overwrite=True)
    assert photo.read_bytes() == b"my photo"


def test_a_file_inside_an_input_folder_is_not_replaced_but_a_new_one_may_be_written(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "model.keras").write_bytes(b"weights")
    with pytest.raises(OutputError, match="part of the input --model"):
        outputs.check_file(workdir / "model.keras", inputs=[("--model", workdir)], overwrite=True)
    assert outputs.check_file(workdir / "talking.mp4", inputs=[("--model", workdir)]) == workdir / "talking.mp4"


def test_existing_outputs_need_overwrite_and_missing_folders_are_named(photo, tmp_path):
    out = tmp_path / "talking.mp4"
    out.write_bytes(b"earlier")
    with pytest.raises(FileExistsError, match="already exists \\(pass --overwrite"):
        outputs.check_file(out, inputs=[("--face", photo)])
    assert outputs.check_file(out, inputs=[("--face", photo)], overwrite=True) == out
    with pytest.raises(FileNotFoundError, match="the folder .*missing does not exist"):
        outputs.check_file(tmp_path / "missing" / "talking.mp4")
    with pytest.raises(OutputError, match="is a folder"):
        outputs.check_file(tmp_path, overwrite=True)


def test_unwritable_folders_are_refused_before_any_work(tmp_path):
    folder = unwritable_folder(tmp_path)
    with pytest.raises(OutputError, match="cannot write in"):
        outputs.check_file(os.path.join(folder, "talking.mp4"))
    with pytest.raises(OutputError, match="cannot write in"):
        outputs.check_folder(os.path.join(folder, "report"))


def test_long_names_keep_their_temporaries_within_the_limit(tmp_path):
    limit = outputs.name_max(tmp_path)
    longest = tmp_path / ("n" * (limit - 4) + ".mp4")  # a legal name: exactly the limit
    with outputs.atomic_file(longest) as tmp:
        assert len(tmp.name.encode()) <= limit
        tmp.write_bytes(b"video")
    assert longest.read_bytes() == b"video"
    assert len(outputs.temporary_name(longest, ".parts", reserve=8).encode()) + 8 <= limit
    with pytest.raises(OutputError, match=f"file name is {limit + 46} bytes long; this file system allows {limit}"):
        outputs.check_file(tmp_path / ("n" * (limit + 42) + ".mp4"))


def test_a_failed_block_leaves_nothing_and_keeps_the_old_output(tmp_path):
    out = tmp_path / "talking.mp4"
    out.write_bytes(b"earlier")
    with pytest.raises(RuntimeError), outputs.atomic_file(out, overwrite=True) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash")
    assert out.read_bytes() == b"earlier" and sorted(p.name for p in tmp_path.iterdir()) == ["talking.mp4"]


def test_the_final_move_never_replaces_a_file_that_appeared_meanwhile(tmp_path):
    out = tmp_path / "talking.mp4"
    with pytest.raises(FileExistsError, match="appeared while this command ran"):
        with outputs.atomic_file(out) as tmp:
            tmp.write_bytes(b"second run")
            out.write_bytes(b"first run")  # another run finished first
    assert out.read_bytes() == b"first run" and sorted(p.name for p in tmp_path.iterdir()) == ["talking.mp4"]
    with outputs.atomic_file(out, overwrite=True) as tmp:
        tmp.write_bytes(b"replaced on purpose")
    assert out.read_bytes() == b"replaced on purpose"


def test_two_concurrent_writers_one_wins_and_nothing_is_lost(tmp_path):
    out, results, ready = tmp_path / "talking.mp4", [], threading.Barrier(2)

    def write(content):
        try:
            with outputs.atomic_file(out) as tmp:
                tmp.write_bytes(content)
                ready.wait()
            results.append(content)
        except FileExistsError:
            results.append(None)

    threads = [threading.Thread(target=write, args=(c,)) for c in (b"a", b"b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and out.read_bytes() == winners[0]


@pytest.mark.parametrize("where", ["equal", "inside", "holds"])
def test_an_output_folder_that_equals_holds_or_lies_inside_an_input_is_refused(tmp_path, where):
    shards = tmp_path / "data" / "shards"
    shards.mkdir(parents=True)
    (shards / "train-00000-of-00001.tfrecord").write_bytes(b"data")
    out = {"equal": shards, "inside": shards / "report", "holds": tmp_path / "data"}[where]
    with pytest.raises(OutputError, match="input --data"):
        outputs.check_folder(out, inputs=[("--data", shards)], overwrite=True, marker="report.json")
    assert (shards / "train-00000-of-00001.tfrecord").read_bytes() == b"data"


def test_overwrite_replaces_only_a_folder_the_command_made(tmp_path):
    foreign, ours = tmp_path / "foreign", tmp_path / "ours"
    for folder in (foreign, ours):
        folder.mkdir()
        (folder / "keep.txt").write_text("x")
    (ours / "report.json").write_text("{}")
    with pytest.raises(FileExistsError, match="not empty \\(pass --overwrite"):
        outputs.check_folder(ours, marker="report.json")
    with pytest.raises(OutputError, match="holds files this command did not write \\(no report.json\\)"):
        outputs.check_folder(foreign, overwrite=True, marker="report.json")
    with outputs.atomic_folder(ours, overwrite=True, marker="report.json") as staging:
        (staging / "report.json").write_text('{"new": 1}')
    assert sorted(p.name for p in ours.iterdir()) == ["report.json"] and (foreign / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign", "ours"]  # no staging or old folder left
    with pytest.raises(OutputError, match="is a file, not a folder"):
        outputs.check_folder(foreign / "keep.txt", overwrite=True)
