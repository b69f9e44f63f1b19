"""Named experiments, JSON round trips and --override parsing."""

import json

import pytest

from keras_s2v.configs import experiments


def test_required_experiments_and_tiny_twins_exist():
    names = experiments.experiment_names()
    for base in ("s2v", "s2v_5img", "s2v_noskip", "deblur", "syncnet"):
        assert base in names and f"{base}_tiny" in names
    assert experiments.get_experiment("s2v_5img").model.num_identity_images == 5
    assert experiments.get_experiment("s2v_noskip_tiny").model.skip_connections is False
    assert experiments.get_experiment("deblur_tiny").model.kind == "deblur"
    mobile, mobile_tiny = experiments.get_experiment("s2v_mobile"), experiments.get_experiment("s2v_mobile_tiny")
    assert (mobile.model.separable, mobile_tiny.model.separable, mobile.train) == (True, True, experiments.s2v().train)
    assert experiments.get_experiment("s2v").model.separable is False
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
            "model.skip_connections=false",
            "train.optimizer=adam",
            "model.identity_weights=/w.h5",
            "model.width=0.5",
        ],
    )
    assert (config.train.epochs, config.train.learning_rate, config.model.skip_connections) == (3, 2e-4, False)
    assert (config.train.optimizer, config.model.identity_weights, config.model.width) == ("adam", "/w.h5", 0.5)
    assert experiments.apply_overrides(config, ["model.identity_weights=none"]).model.identity_weights is None
    assert experiments.get_experiment("s2v").train.epochs != 3  # the registry is not mutated
    for bad, message in [
        ("train.epoch=3", "unknown config field"),
        ("train=3", "unknown config field"),
        ("train.epochs", "not key=value"),
        ("train.epochs=many", "override"),
        ("model.skip_connections=maybe", "not a boolean"),
    ]:
        with pytest.raises(ValueError, match=message):
            experiments.apply_overrides(config, [bad])


def test_glance_is_the_paper_and_each_ablation_switches_one_part():
    paper = experiments.get_experiment("glance")
    t = paper.train
    assert (paper.model.kind, paper.model.window_frames, t.optimizer, t.learning_rate) == ("glance", 16, "adam", 2e-4)
    assert (t.adam_beta_1, t.weight_decay, t.mismatch_weight, t.generated_weight) == (0.5, 4e-4, 0.5, 0.5)
    assert (t.correlation_weight, t.pixel_weight, t.perceptual_weight, t.adversarial_weight) == (1.0, 0.5, 1.0, 1.0)
    full = json.loads(paper.to_json())
    for name in experiments.GLANCE_ABLATIONS:
        ablation = json.loads(experiments.get_experiment(name).to_json())
        changed = [f"{s}.{k}" for s in ("model", "data", "train") for k in full[s] if full[s][k] != ablation[s][k]]
        assert len(changed) == 1, (name, changed)
        for size in ("_small", "_tiny"):
            assert experiments.get_experiment(name + size).model.kind == "glance"
