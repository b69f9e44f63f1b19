"""The task registry: one task per model kind, each building the model its workdir says it holds."""

import pytest

from keras_s2v.configs.experiments import get_experiment
from keras_s2v.training import tasks
from keras_s2v.training.tasks.base import Task
from keras_s2v.workdirs import MODEL_CLASSES, MODEL_KINDS

# The tiny experiment of each kind.
TINY = {
    "speech2vid": "s2v_tiny",
    "deblur": "deblur_tiny",
    "syncnet": "syncnet_tiny",
    "tgan": "tgan_tiny",
    "glance": "glance_tiny",
    "lipflow": "lipflow_tiny",
    "lipae": "lipae_tiny",
}


def test_every_model_kind_has_one_registered_task():
    assert sorted(tasks.task_kinds()) == sorted(MODEL_KINDS) == sorted(TINY)
    for kind in MODEL_KINDS:
        task = tasks.get_task(kind)
        assert isinstance(task, Task) and task.kind == kind


def test_an_unknown_kind_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown model kind 'vae'") as error:
        tasks.get_task("vae")
    assert all(kind in str(error.value) for kind in MODEL_KINDS)


def test_a_kind_registers_once():
    with pytest.raises(ValueError, match="'deblur' has a task already"):
        tasks.register_task("deblur")(type("Again", (Task,), {}))
    assert tasks.get_task("deblur").__class__.__name__ == "DeblurTask"


@pytest.mark.parametrize("kind", sorted(TINY))
def test_each_task_builds_the_model_class_its_workdir_holds(kind):
    config = get_experiment(TINY[kind])
    assert config.model.kind == kind
    assert type(tasks.get_task(kind).build_model(config)).__name__ == MODEL_CLASSES[kind]


def test_only_generators_draw_an_image_grid_and_only_glance_has_helpers():
    assert {kind for kind in MODEL_KINDS if not tasks.get_task(kind).image_grid} == {"syncnet", "lipflow"}
    helpers = {kind: tasks.get_task(kind).pretrained_helpers(get_experiment(TINY[kind])) for kind in MODEL_KINDS}
    assert {kind for kind, found in helpers.items() if found} == {"glance"}
    assert {role: (field, helper.model.kind) for role, (field, helper) in helpers["glance"].items()} == {
        "flow": ("glance.flow_model", "lipflow"),
        "perceptual": ("glance.perceptual_model", "lipae"),
    }


@pytest.mark.parametrize("kind", sorted(set(MODEL_KINDS) - {"speech2vid"}))
def test_sync_weight_is_speech2vids_alone(kind):
    config = get_experiment(TINY[kind])
    config.train.sync_weight = 0.5
    with pytest.raises(ValueError, match="one-image Speech2Vid"):
        tasks.get_task(kind).check_inputs(config)
