"""Shared fixtures: the real-media folder (optional), small synthetic inputs and short tiny trainings."""

import collections
import fcntl
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The short run behind `trained_tiny`: enough steps to move the weights away from their initial values.
SHORT_RUN = ["train.epochs=1", "train.steps_per_epoch=2", "train.validation_steps=1"]

# The files that take longest (20 s to 4 minutes on 2 CPU cores, the "slowest files" table that ends a run),
# longest first. `make test` hands whole files to its 2 workers in collection order (--dist loadfile
# --no-loadscope-reorder): these start first, and the many short files even out the end. test_demo.py second:
# it makes its own corpus while the first file's worker makes the shared synthetic shards. The rest keep their order.
SLOW_FILES = (
    "tests/training/test_multi_worker.py",
    "tests/test_demo.py",
    "tests/export/test_export_tgan.py",
    "tests/training/test_train.py",
    "tests/export/test_export_glance.py",
    "tests/test_generate.py",
    "tests/export/test_export.py",
    "tests/evaluation/test_evaluate.py",
    "tests/training/test_precision.py",
    "tests/training/test_lipsync.py",
    "tests/export/test_export_masked.py",
    "tests/data/test_prepare.py",
    "tests/test_cli_safety.py",
    "tests/export/test_presets.py",
    "tests/test_stream.py",
    "tests/training/test_replicas.py",
    "tests/training/test_glance.py",
    "tests/test_serving_client.py",
    "tests/training/test_gan.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.relative_to(ROOT).as_posix(), len(rank)))  # stable


def _cpu_seconds() -> float:
    """This process's CPU time with its waited-for children's (a test's subprocesses)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    item.cpu_mark = _cpu_seconds()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Each phase's CPU seconds travel with its report, also from an xdist worker to the controller.
    report = (yield).get_result()
    now = _cpu_seconds()
    report.user_properties.append(("cpu_s", now - item.cpu_mark))
    item.cpu_mark = now


_FILE_SECONDS = collections.defaultdict(lambda: [0.0, 0.0])  # file -> [wall, CPU] over setup, call, teardown


def pytest_runtest_logreport(report):
    seconds = _FILE_SECONDS[report.nodeid.split("::")[0]]
    seconds[0] += report.duration
    seconds[1] += dict(report.user_properties).get("cpu_s", 0.0)


def pytest_terminal_summary(terminalreporter):
    """The slowest files (what `make test`'s budget is spent on), wall and CPU seconds, fixtures included."""
    slowest = sorted(_FILE_SECONDS.items(), key=lambda item: -item[1][0])[:20]
    if slowest:
        terminalreporter.section("slowest files (wall s, CPU s)")
        for name, (wall, cpu) in slowest:
            terminalreporter.write_line(f"{wall:7.1f} {cpu:7.1f}  {name}")


def media_dir() -> Path:
    return Path(os.environ.get("KERAS_S2V_MEDIA", ROOT.parent / "shared" / "media"))


def shared_folder(tmp_path_factory, name: str, make) -> Path:
    """The folder ``name``, made once per test run by ``make(folder)`` (which creates it); read it, never write in it.

    pytest-xdist runs a session fixture once in every worker process: through this the first worker to
    ask makes the folder, under a file lock in the run's common temporary folder, and the others wait
    for it and use the same one. When ``make`` fails, the next caller starts it again from nothing.
    Without xdist it is a folder of this session.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        folder = tmp_path_factory.mktemp(name) / name
        make(folder)
        return folder
    root = tmp_path_factory.getbasetemp().parent  # pytest-N/, holding each worker's popen-gwK/
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when make raises
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def media():
    """``../shared/media`` (or $KERAS_S2V_MEDIA); tests that need it skip without it."""
    path = media_dir()
    if not (path / "MANIFEST.tsv").exists():
        pytest.skip(f"real media not found at {path} (set KERAS_S2V_MEDIA)")
    return path


@pytest.fixture
def run_main_here(capsys):
    """``run_main_here(body)`` -> (exit status, stderr): what a command's ``main`` runs once its flags are parsed,
    ``cli.run_main(body)`` (a bad input: one ``error:`` line, status 2), in this process: no TensorFlow start-up
    of a subprocess where the flags are not what a test checks."""
    import signal

    from keras_s2v import cli

    def run(body):
        previous = signal.getsignal(signal.SIGTERM)  # run_main installs the command's own handler
        try:
            status = cli.run_main(body)
        finally:
            signal.signal(signal.SIGTERM, previous)
        return status, capsys.readouterr().err

    return run


@pytest.fixture(scope="session")
def synth_shards(tmp_path_factory):
    """Shards the project makes itself: 2 synthetic speakers x 1 clip x 3 s, last quarter held out.

    The clips are in ``synth_shards.parent / "corpus"``; one folder for the whole run (read only).
    """

    def make(root):
        from keras_s2v.data import prepare, synth

        synth.make_corpus(root / "corpus", num_clips=1, seconds=3.0, size=192, seed=0, log=None)
        config = prepare.PrepareConfig(split="train", holdout_tail=0.25, min_track_frames=20)
        manifest = prepare.prepare([str(root / "corpus")], root / "shards", config, progress=False, log=lambda _: None)
        assert manifest["clips_ok"] == 2, manifest

    return shared_folder(tmp_path_factory, "synth", make) / "shards"


@pytest.fixture(scope="session")
def synth_shards_two_files(synth_shards, tmp_path_factory):
    """``synth_shards`` with its 2 train segments dealt into 2 train shard files, one each (``data.shard_by=file``)."""

    def make(folder):
        from keras_s2v.data import prepared

        prepared.reshard(synth_shards, folder, 2)

    return shared_folder(tmp_path_factory, "synth_two_files", make)


@pytest.fixture(scope="session")
def trained_tiny(synth_shards, tmp_path_factory):
    """``trained_tiny("s2v_tiny", *overrides)``: the workdir of a `SHORT_RUN` of that experiment (with
    those config overrides) on ``synth_shards``.

    Each one trains once per test run, for every file that asks (read it, never write in it: copy it first).
    """

    def get(name: str, *overrides: str) -> Path:
        def make(workdir):
            from keras_s2v.configs.experiments import apply_overrides, get_experiment
            from keras_s2v.training import train_lib

            train_lib.train(apply_overrides(get_experiment(name), [*SHORT_RUN, *overrides]), synth_shards, workdir)

        return shared_folder(tmp_path_factory, "__".join(["trained", name, *overrides]), make)

    return get
