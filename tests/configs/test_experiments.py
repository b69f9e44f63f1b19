"""Named experiments, JSON round trips, --override parsing and the old flat model configs."""

import json
import operator
from pathlib import Path

import pytest

from keras_s2v.configs import experiments


def test_required_experiments_and_tiny_twins_exist():
    names = experiments.experiment_names()
    for base in ("s2v", "s2v_5img", "s2v_noskip", "deblur", "syncnet"):
        assert base in names and f"{base}_tiny" in names
    assert experiments.get_experiment("s2v_5img").model.num_identity_images == 5
    assert experiments.get_experiment("s2v_noskip_tiny").model.speech2vid.skip_connections is False
    assert experiments.get_experiment("deblur_tiny").model.kind == "deblur"
    mobile, mobile_tiny = experiments.get_experiment("s2v_mobile"), experiments.get_experiment("s2v_mobile_tiny")
    assert (mobile.model.speech2vid.separable, mobile_tiny.model.speech2vid.separable, mobile.train) == (
        True,
        True,
        experiments.s2v().train,
    )
    assert experiments.get_experiment("s2v").model.speech2vid.separable is False
    paper = experiments.get_experiment("s2v")
    assert (paper.train.optimizer, paper.train.learning_rate, paper.model.width) == ("sgd", 1e-5, 1.0)
    with pytest.raises(ValueError, match="unknown experiment"):
        experiments.get_experiment("s2v_huge")


@pytest.mark.parametrize("name", experiments.experiment_names())
def test_json_round_trip(name):
    config = experiments.get_experiment(name)
    again = experiments.ExperimentConfig.from_dict(json.loads(config.to_json()))
    assert again == config and again.name == name


def test_overrides_parse_by_field_type():
    config = experiments.apply_overrides(
        experiments.get_experiment("s2v"),
        [
            "train.epochs=3",
            "train.learning_rate=2e-4",
            "model.speech2vid.skip_connections=false",
            "train.optimizer=adam",
            "model.speech2vid.identity_weights=/w.h5",
            "model.width=0.5",
        ],
    )
    s2v = config.model.speech2vid
    assert (config.train.epochs, config.train.learning_rate, s2v.skip_connections) == (3, 2e-4, False)
    assert (config.train.optimizer, s2v.identity_weights, config.model.width) == ("adam", "/w.h5", 0.5)
    cleared = experiments.apply_overrides(config, ["model.speech2vid.identity_weights=none"])
    assert cleared.model.speech2vid.identity_weights is None
    assert experiments.get_experiment("s2v").train.epochs != 3  # the registry is not mutated
    for bad, message in [
        ("train.epoch=3", "unknown config field"),
        ("train=3", "unknown config field"),
        ("train.epochs", "not key=value"),
        ("train.epochs=many", "override"),
        ("model.speech2vid.skip_connections=maybe", "not a boolean"),
        ("model.speech2vid=true", "unknown config field"),
        ("model.deblur.deblur_depth=3", "unknown config field"),
    ]:
        with pytest.raises(ValueError, match=message):
            experiments.apply_overrides(config, [bad])


def test_glance_is_the_paper_and_each_ablation_switches_one_part():
    paper = experiments.get_experiment("glance")
    t = paper.train
    assert (paper.model.kind, paper.model.glance.window_frames, t.optimizer, t.learning_rate) == (
        "glance",
        16,
        "adam",
        2e-4,
    )
    assert (t.adam_beta_1, t.weight_decay, t.mismatch_weight, t.generated_weight) == (0.5, 4e-4, 0.5, 0.5)
    assert (t.correlation_weight, t.pixel_weight, t.perceptual_weight, t.adversarial_weight) == (1.0, 0.5, 1.0, 1.0)
    full = _fields(paper.to_dict())
    for name in experiments.GLANCE_ABLATIONS:
        ablation = _fields(experiments.get_experiment(name).to_dict())
        changed = [k for k in full if k != "name" and full[k] != ablation[k]]
        assert len(changed) == 1, (name, changed)
        for size in ("_small", "_tiny"):
            assert experiments.get_experiment(name + size).model.kind == "glance"


def _fields(values: dict, prefix: str = "") -> dict:
    """A config dict as {dotted path: value}."""
    out = {}
    for key, value in values.items():
        out.update(_fields(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def _flat(config) -> dict:
    """The config as ``train`` wrote it before the model sections: one flat model dict of the old names."""
    values = config.to_dict()
    model = {k: v for k, v in values["model"].items() if not isinstance(v, dict)}
    for old, path in experiments.LEGACY_MODEL_FIELDS.items():
        model[old] = operator.attrgetter(path)(config.model)
    return {**values, "model": model}


def test_the_old_flat_names_are_each_one_section_field():
    table = experiments.LEGACY_MODEL_FIELDS
    paths = {f"model.{path}" for path in table.values()}
    every = set(_fields({"model": experiments.get_experiment("s2v").to_dict()["model"]}))
    shared = {p for p in every if p.count(".") == 1}  # kind, width, ...: their names did not change
    assert len(paths) == len(table) and paths | shared == every  # one old name per section field, none left out
    assert {path.split(".")[0] for path in table.values()} == {"speech2vid", "deblur", "syncnet", "tgan", "glance"}


@pytest.mark.parametrize("name", ["s2v_real", "s2v_mobile_real", "syncnet_real", "tgan_mfcc_spp", "glance_framediff"])
def test_an_old_flat_config_loads_into_the_sections(name):
    config = experiments.get_experiment(name)
    flat = json.loads(json.dumps(_flat(config)))
    assert "skip_connections" in flat["model"] and "speech2vid" not in flat["model"]
    assert experiments.ExperimentConfig.from_dict(flat) == config
    older = {**flat, "model": {k: v for k, v in flat["model"].items() if k != "full_res_skip"}}  # before the field
    assert experiments.ExperimentConfig.from_dict(older).model.speech2vid.full_res_skip is False
    both = {**flat, "model": {**flat["model"], "tgan": {"noise_dim": 3}}}
    with pytest.raises(ValueError, match="model.noise_dim and model.tgan.noise_dim"):
        experiments.ExperimentConfig.from_dict(both)
    with pytest.raises(TypeError):
        experiments.ExperimentConfig.from_dict({**flat, "model": {**flat["model"], "no_such_field": 1}})


@pytest.mark.parametrize("preset", ["s2v_real", "s2v_mobile_real", "syncnet_real"])
def test_the_presets_config_files_load(preset):
    """The shipped presets' config.json are as train wrote them, flat (syncnet_real, from before the sections) or
    in sections (the others): each value lands in its field."""
    path = Path(experiments.__file__).parents[1] / "pretrained" / preset / "config.json"
    values = json.loads(path.read_text())
    config = experiments.ExperimentConfig.from_dict(values)
    for name, value in values["model"].items():
        if isinstance(value, dict):  # a section
            for field, section_value in value.items():
                assert operator.attrgetter(f"{name}.{field}")(config.model) == section_value, f"{name}.{field}"
        else:
            assert operator.attrgetter(experiments.LEGACY_MODEL_FIELDS.get(name, name))(config.model) == value, name
    assert experiments.ExperimentConfig.from_dict(json.loads(config.to_json())) == config


def test_old_flat_override_names_set_their_section_fields():
    config = experiments.apply_overrides(
        experiments.get_experiment("s2v"),
        [
            "model.full_res_skip=true",
            "model.deblur_depth=3",
            "model.sync_crop=mouth",
            "model.noise_dim=4",
            "model.glance_skips=false",
            "model.flow_model=/flow",
        ],
    )
    m = config.model
    assert (m.speech2vid.full_res_skip, m.deblur.depth, m.syncnet.crop) == (True, 3, "mouth")
    assert (m.tgan.noise_dim, m.glance.skips, m.glance.flow_model) == (4, False, "/flow")
    with pytest.raises(ValueError, match="not a boolean"):
        experiments.apply_overrides(config, ["model.separable=maybe"])
    with pytest.raises(AttributeError):  # an old name set in code fails, not silently
        m.separable = True
