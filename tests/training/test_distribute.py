"""training.distribute without a cluster: TF_CONFIG's checks, the single-machine defaults, the CLI's error."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keras_s2v.training import distribute

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 1}}


def test_a_good_tf_config_names_the_task_and_counts_the_workers():
    assert distribute.check_tf_config(json.dumps(GOOD)) == {"task": ("worker", 1), "workers": 2}
    with_chief = {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "chief", "index": 0}}
    assert distribute.check_tf_config(json.dumps(with_chief)) == {"task": ("chief", 0), "workers": 3}


@pytest.mark.parametrize(
    "tf_config, says",
    [
        (None, "TF_CONFIG, which is not set"),
        ("", "TF_CONFIG, which is not set"),
        ("{cluster: 1}", "TF_CONFIG is not JSON"),
        (json.dumps({"task": GOOD["task"]}), "has no cluster"),
        (json.dumps({**GOOD, "cluster": {"worker": ["a:1"], "ps": ["b:1"]}}), "job(s) ps"),
        (json.dumps({**GOOD, "cluster": {"worker": []}}), "not a non-empty list"),
        (json.dumps({**GOOD, "cluster": {"worker": ["host1", "host2:2"]}}), "'host1', not a host:port"),
        (json.dumps({**GOOD, "cluster": {"worker": ["a:99999", "b:1"]}}), "not a host:port"),
        (json.dumps({**GOOD, "cluster": {"worker": ["a:1", "a:1"]}}), "names a:1 twice"),
        (json.dumps({**GOOD, "cluster": {"chief": ["a:1", "b:1"], "worker": ["c:1"]}}), "2 chiefs"),
        (json.dumps({"cluster": GOOD["cluster"]}), "has no task"),
        (json.dumps({**GOOD, "task": {"type": "chief", "index": 0}}), "task type 'chief' is not a job"),
        (json.dumps({**GOOD, "task": {"type": "worker", "index": 2}}), "task index 2 is not one of cluster.worker's 2"),
        (json.dumps({**GOOD, "task": {"type": "worker", "index": "0"}}), "task index '0'"),
    ],
)
def test_a_bad_tf_config_says_what_is_wrong(tf_config, says):
    with pytest.raises(ValueError) as error:
        distribute.check_tf_config(tf_config)
    assert says in str(error.value)


def test_one_machine_is_its_own_chief_and_writes_the_workdir(tmp_path):
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()  # the default: no cluster
    assert distribute.is_chief(strategy) and distribute.num_workers(strategy) == 1
    assert distribute.gather_ints(strategy, 3) == [3]
    distribute.barrier(strategy)
    with distribute.write_dir(tmp_path, strategy) as out:
        assert out == tmp_path
    distribute.check_shared(tmp_path, strategy, "config.json")  # the chief never waits for itself


def test_the_cli_refuses_multi_worker_without_a_cluster(synth_shards, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CONFIG": '{"cluster": {"worker": ["localhost"]}}'}
    args = [sys.executable, "-m", "keras_s2v.train", "--data", str(synth_shards), "--workdir", str(tmp_path / "run")]
    result = subprocess.run(
        args + ["--experiment", "s2v_tiny", "--strategy", "multi_worker"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: TF_CONFIG's cluster.worker holds 'localhost', not a host:port address" in result.stderr
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_the_input_is_split_by_data_not_left_to_auto():
    """DATA set outright (``distribute.sharded``): FILE cannot shard the pipelines' random-key source (nor a split of
    fewer shards than workers), and AUTO would try FILE and fall back to DATA with a warning."""
    import tensorflow as tf

    options = distribute.sharded(tf.data.Dataset.range(4)).options()
    assert options.experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA


def test_file_sharding_is_checked_before_anything_is_written(synth_shards, synth_shards_two_files):
    """data.shard_by: an unknown value, and "file" with fewer train shard files than workers, refused by
    ``check_inputs`` (which ``train`` calls first); "file" on one machine is the one machine's input."""
    import tensorflow as tf

    from keras_s2v.configs.experiments import apply_overrides, get_experiment
    from keras_s2v.training import train_lib

    by_file = apply_overrides(get_experiment("s2v_tiny"), ["data.shard_by=file"])
    with pytest.raises(ValueError, match="unknown data.shard_by 'files' \\(data, file\\)"):
        train_lib.check_inputs(apply_overrides(get_experiment("s2v_tiny"), ["data.shard_by=files"]), synth_shards)
    with pytest.raises(ValueError, match="1 train shard file\\(s\\) for 2 workers"):
        train_lib.check_inputs(by_file, synth_shards, workers=2)
    train_lib.check_inputs(by_file, synth_shards, workers=1)
    train_lib.check_inputs(by_file, synth_shards_two_files, workers=2)
    dataset = tf.data.Dataset.range(4)
    one_machine = distribute.training_input(tf.distribute.get_strategy(), dataset, None, 4, "file")
    assert one_machine.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA


def test_a_lost_worker_is_named_with_how_to_resume():
    """What a collective fails with when a peer dies (the survivor's error in test_multi_worker's kill test)."""
    import types

    import tensorflow as tf

    spec = types.SimpleNamespace(as_dict=lambda: {"worker": ["a:1", "b:1"]}, jobs=["worker"])
    resolver = types.SimpleNamespace(cluster_spec=lambda: spec, task_type="worker", task_id=0)
    two = types.SimpleNamespace(extended=types.SimpleNamespace(_in_multi_worker_mode=lambda: True))
    two.cluster_resolver = resolver
    lost = (
        "Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks are unhealthy "
        "(stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have crashed."
    )
    with pytest.raises(distribute.WorkerLost) as error:
        with distribute.worker_loss_explained(two):
            raise tf.errors.UnavailableError(None, None, lost)
    assert str(error.value).startswith(
        "worker 0: lost /job:worker/replica:0/task:1 (it stopped sending heartbeats); every finished epoch"
    )
    assert "start the same command again on every worker" in str(error.value)
    with pytest.raises(tf.errors.UnavailableError):  # one machine: TensorFlow's own error
        with distribute.worker_loss_explained(tf.distribute.get_strategy()):
            raise tf.errors.UnavailableError(None, None, lost)
