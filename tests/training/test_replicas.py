"""MirroredStrategy: one step with the global batch split over 2 CPU replicas equals the step on 1.

Apart from test_train.py so the two slow subprocesses can run beside it in another pytest worker.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


# Speech2Vid's plain Keras step. The GAN trainer's own step (three players, three optimizers) is held to one
# process's on the same global batch by test_multi_worker.py: the same cross-replica loss scaling, over two
# worker processes instead of two devices of one.
@pytest.mark.parametrize("name, tolerance", [("s2v_tiny", 1e-4)])
def test_two_replicas_give_the_same_step_as_one(name, tolerance):
    # As a module from the repository root: run as a script, its own folder would come first on its path and
    # keras_s2v would be whichever checkout the virtual environment installed (in a git worktree: another one).
    command = [sys.executable, "-m", "tests.training.replica_step", name]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    moved, diff = map(float, re.search(r"moved (\S+) diff (\S+)", result.stdout).groups())
    assert moved > 1e-3  # the step did change the weights...
    # ...and identically with the global batch split over 2 replicas; a wrong loss scaling would
    # differ by about half the step.
    assert diff < tolerance
