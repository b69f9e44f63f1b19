"""Where training runs: the ``tf.distribute`` strategy, which worker writes the run, and the input's sharding.

``train --strategy mirrored`` (the default): every GPU of this machine (or its CPU), one process.
``--strategy multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the machines that
``TF_CONFIG`` names, one process per machine, each started with the same command and its own
``TF_CONFIG`` task (``check_tf_config`` says what a bad one lacks). The TF multi-worker guide's rules:

* every worker runs every step and every callback (saving may run collective ops, and the
  validation images' ``predict`` does), but only the chief writes into the workdir: the others
  write the same files to a temporary folder of their own, removed when training ends
  (``write_dir``);
* the workdir is on a filesystem every worker sees (NFS or the like): the chief writes there
  and every worker resumes from its checkpoints (``check_shared``; a worker that does not see them
  is refused rather than left to train a different model);
* a worker that dies ends the others: the coordination service that MultiWorkerMirroredStrategy
  starts misses its heartbeats (10 s) and fails their pending collective (``WorkerLost`` says so);
  the same commands started again on every worker resume from the chief's last checkpoint;
* the input is the global batch (per-replica batch x all replicas of all workers), split by
  ``tf.distribute`` into each worker's part, by data (``sharded``); or, with ``data.shard_by=file``,
  each worker's own pipeline over its own shard files (``training_input``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

STRATEGIES = ("mirrored", "multi_worker")
SHARD_BY = ("data", "file")  # data.shard_by: how the workers split the training input (training_input)
JOBS = ("chief", "worker")  # the TF_CONFIG jobs a synchronous all-reduce cluster has
TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}} (index 1 on host2)'
)


def check_tf_config(text: str | None) -> dict:
    """The ``TF_CONFIG`` of a multi-worker run, checked -> ``{"task": (type, index), "workers": count}``.

    A ValueError says what is wrong: unset, not JSON, no cluster or task, a job other than
    ``chief``/``worker``, an address that is not ``host:port``, the same address twice, or a task
    that is not in the cluster.
    """
    if not text or not text.strip():
        raise ValueError(
            f"--strategy multi_worker reads the cluster from TF_CONFIG, which is not set; e.g. {TF_CONFIG_EXAMPLE}"
        )
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ValueError(f"TF_CONFIG is not JSON ({error}): {text[:200]!r}") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or not config["cluster"]:
        raise ValueError(
            f"TF_CONFIG has no cluster (a dict of job name -> list of host:port); e.g. {TF_CONFIG_EXAMPLE}"
        )
    cluster = config["cluster"]
    unknown = sorted(set(cluster) - set(JOBS))
    if unknown:
        raise ValueError(
            f"TF_CONFIG's cluster has job(s) {', '.join(unknown)}: MultiWorkerMirroredStrategy takes "
            f"{' and '.join(JOBS)} only (no parameter servers or evaluator)"
        )
    seen = set()
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise ValueError(f"TF_CONFIG's cluster.{job} is not a non-empty list of host:port addresses: {addresses!r}")
        for address in addresses:
            host, _, port = str(address).rpartition(":") if isinstance(address, str) else ("", "", "")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"TF_CONFIG's cluster.{job} holds {address!r}, not a host:port address")
            if address in seen:
                raise ValueError(f"TF_CONFIG's cluster names {address} twice: every task needs its own host:port")
            seen.add(address)
    if len(cluster.get("chief", [])) > 1:
        raise ValueError(f"TF_CONFIG's cluster has {len(cluster['chief'])} chiefs; at most one")
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task:
        raise ValueError(
            'TF_CONFIG has no task (this process\'s place in the cluster, e.g. {"type": "worker", "index": 0})'
        )
    kind, index = task["type"], task.get("index", 0)
    if kind not in cluster:
        raise ValueError(f"TF_CONFIG's task type {kind!r} is not a job of its cluster ({', '.join(cluster)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[kind]):
        raise ValueError(
            f"TF_CONFIG's task index {index!r} is not one of cluster.{kind}'s {len(cluster[kind])} "
            f"(0 .. {len(cluster[kind]) - 1})"
        )
    return {"task": (kind, index), "workers": sum(len(addresses) for addresses in cluster.values())}


class WorkerLost(RuntimeError):
    """Another worker of the cluster stopped during the run (its machine went down, it was killed)."""


@contextlib.contextmanager
def worker_loss_explained(strategy):
    """The ``UnavailableError`` a collective fails with when a peer dies, raised again as a ``WorkerLost`` that
    names the lost tasks and says how to resume; other errors, and any on one machine, as they are."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.UnavailableError as error:
        if num_workers(strategy) == 1:
            raise
        tasks = sorted(set(re.findall(r"/job:\w+/replica:\d+/task:\d+", error.message))) or ["a worker"]
        lines = error.message.strip().splitlines()
        why = "it stopped sending heartbeats" if "heartbeats" in error.message else lines[0] if lines else "unavailable"
        raise WorkerLost(
            f"{worker_name(strategy)}: lost {', '.join(tasks)} ({why}); every finished epoch is in the workdir's "
            "checkpoints: start the same command again on every worker to resume from the last one"
        ) from error


def make_strategy(name: str = "mirrored"):
    """The strategy ``--strategy`` names. Created before any other TensorFlow op: a multi-worker
    strategy sets up the cluster's collective ops, which TensorFlow allows at program start only."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        return _multi_worker_strategy()
    raise ValueError(f"unknown strategy {name!r} ({', '.join(STRATEGIES)})")


def _multi_worker_strategy():
    """``tf.distribute.MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras 3's ``fit`` hands it.

    Keras (3.15) reduces its first batch (a dict of inputs, a target) in one ``reduce`` call to build
    the model, and each step's scalar logs along axis 0; the multi-worker strategy's cross-device
    ops take one tensor per call, and a scalar has no axis 0 (its mean over the replicas is meant).
    """
    import tensorflow as tf

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            parent = super()

            def leaf(v):
                sample = v.values[0] if isinstance(v, tf.distribute.DistributedValues) else v
                scalar = getattr(getattr(sample, "shape", None), "rank", None) == 0
                return parent.reduce(reduce_op, v, None if scalar else axis)

            return tf.nest.map_structure(leaf, value)

    return MultiWorkerMirroredStrategy()


def _resolver(strategy):
    """The cluster resolver of a multi-worker strategy in multi-worker mode, else None."""
    extended = getattr(strategy, "extended", None)
    in_multi_worker = getattr(extended, "_in_multi_worker_mode", None)
    if in_multi_worker is None or not in_multi_worker():
        return None
    return strategy.cluster_resolver


def num_workers(strategy) -> int:
    resolver = _resolver(strategy)
    if resolver is None:
        return 1
    return sum(len(addresses) for addresses in resolver.cluster_spec().as_dict().values())


def is_chief(strategy) -> bool:
    """Whether this process writes the run: the ``chief`` task, or worker 0 of a cluster without one."""
    resolver = _resolver(strategy)
    if resolver is None:
        return True
    kind, index = resolver.task_type, resolver.task_id
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in resolver.cluster_spec().jobs)


def worker_name(strategy) -> str:
    """``chief``, ``worker 1``, ...: this process in messages."""
    resolver = _resolver(strategy)
    return "chief" if resolver is None else f"{resolver.task_type} {resolver.task_id}"


@contextlib.contextmanager
def write_dir(workdir, strategy):
    """The folder this worker writes its run files to: the workdir on the chief; on the others a
    temporary folder of their own (the TF multi-worker guide's pattern), removed afterwards."""
    if is_chief(strategy):
        yield Path(workdir)
        return
    folder = Path(tempfile.mkdtemp(prefix=f"keras_s2v_{worker_name(strategy).replace(' ', '')}_"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def barrier(strategy) -> None:
    """Wait until every worker gets here (an all-reduce); nothing on one machine."""
    if num_workers(strategy) > 1:
        gather_ints(strategy, 0)


def gather_ints(strategy, value: int) -> list[int]:
    """``value`` of every replica of every worker (each replica of a worker gives its worker's)."""
    import tensorflow as tf

    if num_workers(strategy) == 1:
        return [int(value)] * strategy.num_replicas_in_sync
    per_replica = strategy.run(lambda: tf.constant([int(value)], tf.int64))
    return [int(v) for v in strategy.gather(per_replica, axis=0).numpy()]


def check_shared(workdir, strategy, seen: str) -> None:
    """Refuse a worker that does not see the chief's ``seen`` file in ``workdir`` (called after a barrier):
    its workdir is not the chief's, so it could not resume with the others."""
    if not is_chief(strategy) and not (Path(workdir) / seen).exists():
        raise ValueError(
            f"{worker_name(strategy)}: {workdir} has no {seen} written by the chief; with --strategy multi_worker "
            "the --workdir must be one folder every worker sees (a shared filesystem)"
        )


def sharded(dataset):
    """``dataset`` split between the workers by data: each worker reads it all and keeps its part of each batch.

    Not by file: ``tf.distribute``'s file auto-sharding needs every source of the pipeline to be a
    file reader, and ours zip in the stateless random keys of their draws (``Dataset.random``),
    which it cannot shard ("Did not find a shardable source"); ``data.shard_by=file`` deals the files
    by hand instead (``training_input``). By data, a step's global batch is the one a single machine
    would train on, but every worker decodes all of it.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def training_input(strategy, dataset, make, global_batch: int, shard_by: str = "data"):
    """The training input ``fit`` takes: ``dataset`` (``global_batch`` examples) or ``make(batch_size, shard)``'s.

    ``shard_by`` ``"data"``, or one worker: ``dataset``, ``sharded`` by data. ``"file"`` under several
    workers: ``strategy.distribute_datasets_from_function``, each worker's own pipeline
    ``make(per-replica batch, (worker, workers))``, which reads only its part of the shard files
    (``pipeline.shard_files``) and draws with its own seed: no worker decodes the others' samples,
    and a step trains on other batches than one machine would.
    """
    if shard_by not in SHARD_BY:
        raise ValueError(f"unknown data.shard_by {shard_by!r} ({', '.join(SHARD_BY)})")
    if shard_by == "data" or num_workers(strategy) == 1:
        return sharded(dataset)

    def worker_input(context):  # a tf.distribute.InputContext: this worker's input pipeline
        shard = (context.input_pipeline_id, context.num_input_pipelines)
        return make(context.get_per_replica_batch_size(global_batch), shard)

    return strategy.distribute_datasets_from_function(worker_input)
