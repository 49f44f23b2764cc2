import json

import pytest

from relulab.nn.activations import KINKED, SMOOTH
from relulab.study import config as cfg
from relulab.study import grid, paths


def validated(**overrides):
    return cfg.validate(overrides)


def test_zero_grad_multiplies_only_kinked_activations():
    config = validated(activation=list(KINKED + SMOOTH), zero_grad=[0.0, 0.5, 1.0], lr=[0.01, 0.1])
    points = grid.expand(config)
    assert len(points) == (len(KINKED) * 3 + len(SMOOTH)) * 2
    for point in points:
        assert (point.zero_grad is None) == (point.activation in SMOOTH)
    ids = [p.id for p in points]
    assert len(set(ids)) == len(ids), "no grid point is trained twice"


def test_duplicate_values_are_rejected_before_expansion():
    with pytest.raises(cfg.ConfigError, match="zero_grad"):
        validated(activation=["relu", "elu"], zero_grad=[0, 0.0], lr=[0.1])


def test_axes_from_model_and_training_lists():
    config = validated(
        activation=["relu"],
        zero_grad=[0.0],
        lr=[0.1],
        model={"depth": [2, 4], "batch_norm": [False, True]},
        training={"precision": ["float32", "float64"]},
    )
    points = grid.expand(config)
    assert len(points) == 8
    assert {p.depth for p in points} == {2, 4}
    assert {p.precision for p in points} == {"float32", "float64"}


def test_point_id_is_stable_and_wildcard_safe():
    import re

    point = grid.Point("relu", 0.5, 0.001, "float16", 3, True)
    assert point.id == "relu_zg0.5_lr0.001_float16_d3_bn"
    assert re.fullmatch(grid.POINT_PATTERN, point.id)
    assert grid.Point("elu", None, 1e-5, "float32", 2, False).id == "elu_lr1e-05_float32_d2_nobn"


def test_fingerprint_ignores_seeds_and_sees_training_changes():
    base = validated(activation=["relu"], zero_grad=[0.0], lr=[0.1])
    point = grid.expand(base)[0]
    more_seeds = validated(activation=["relu"], zero_grad=[0.0], lr=[0.1], training={"seeds": 9})
    longer = validated(activation=["relu"], zero_grad=[0.0], lr=[0.1], training={"epochs": 99})
    assert grid.fingerprint(point, base) == grid.fingerprint(point, more_seeds)
    assert grid.fingerprint(point, base) != grid.fingerprint(point, longer)


@pytest.mark.parametrize("seeds, expected", [(3, [0, 1, 2]), ([5, 7], [5, 7])])
def test_seeds_count_or_list(seeds, expected):
    assert cfg.seeds(validated(training={"seeds": seeds})) == expected


def test_depth_study_adds_its_points_and_shares_the_main_grids():
    config = validated(
        activation=["relu", "sigmoid"],
        zero_grad=[0.0, 1.0],
        lr=[0.01, 0.1],
        model={"depth": 3},
        depth_study={"depth": [6, 10], "activation": ["relu", "tanh"], "lr": [0.1]},
    )
    main = {p.id for p in grid.main_grid(config)}
    study = grid.depth_study_points(config)
    assert len(main) == (2 + 1) * 2
    # relu (f'(0)=0 only) and tanh, at lr 0.1, at depths 3 (the main grid's), 6 and 10.
    assert sorted((p.activation, p.depth) for p in study) == [
        ("relu", 3),
        ("relu", 6),
        ("relu", 10),
        ("tanh", 3),
        ("tanh", 6),
        ("tanh", 10),
    ]
    assert all(p.lr == 0.1 and p.zero_grad in (0.0, None) for p in study)
    ids = [p.id for p in grid.expand(config)]
    assert len(ids) == len(set(ids)) == len(main | {p.id for p in study}) == 6 + 5


def test_depth_study_can_be_left_out_or_disabled():
    plain = validated(activation=["relu"], lr=[0.1])
    assert grid.depth_study_points(plain) == []
    disabled = validated(activation=["relu"], lr=[0.1], depth_study={"enabled": False})
    assert grid.depth_study_points(disabled) == []
    with pytest.raises(cfg.ConfigError, match="depth_study.*needs lr"):
        validated(depth_study={"depth": [6]})


@pytest.mark.parametrize("per_job", [1, 3, 5, 6, 8, 12, 50])
def test_training_jobs_share_out_every_point_once_keeping_models_together(per_job):
    config = validated(
        activation=["relu", "elu"],
        zero_grad=[0.0, 1.0],
        lr=[0.001, 0.01, 0.1],
        training={"points_per_job": per_job},
    )
    jobs = grid.jobs(config)
    assert all(1 <= len(points) <= per_job for points in jobs.values())
    dealt = [point.id for points in jobs.values() for point in points]
    assert sorted(dealt) == sorted(point.id for point in grid.expand(config))
    # relu's 6 points share an architecture, elu's 3 another: a job holds whole architectures
    # where they fit, so that it can train them side by side.
    relu_jobs = {name for name, points in jobs.items() if points[0].activation == "relu"}
    assert len(relu_jobs) == -(-6 // per_job)
    # The points of one model (architecture, f'(0), optimiser; 3 lrs) share a job where they fit.
    for key in {point.model_key() for point in grid.expand(config)}:
        holding = [name for name, points in jobs.items() if key in {p.model_key() for p in points}]
        assert len(holding) == -(-3 // per_job)
    if per_job == 1:
        assert list(jobs) == [point.id for point in grid.expand(config)]
    assert len(jobs) == len(set(jobs)), "names are unique"


def test_job_names_say_what_they_train():
    config = validated(
        activation=["relu", "tanh"],
        zero_grad=[0.0],
        lr=[0.1, 0.01],
        model={"depth": [2, 4]},
        training={"points_per_job": 8},
    )
    (name,) = grid.jobs(config)
    assert name == "relu-d2+relu-d4+2more_8pts"
    single = grid.jobs(config, [grid.expand(config)[0]])
    assert list(single) == [grid.expand(config)[0].id]


def test_init_is_a_grid_axis_and_earlier_ids_and_fingerprints_stay():
    config = validated(
        activation=["relu"],
        zero_grad=[0.0],
        lr=[0.1],
        model={"init": ["default", "kaiming_normal"]},
    )
    ids = [point.id for point in grid.expand(config)]
    assert ids == [
        "relu_zg0_lr0.1_float32_d3_nobn",
        "relu_zg0_lr0.1_float32_d3_nobn_kaiming_normal",
    ]
    assert "init" in grid.AXES and grid.POINT_COLUMNS[0] == "point"
    # A point of an earlier study (init a scalar) keeps the fingerprint it had before init
    # became an axis: the same JSON of settings is hashed.
    plain = validated(activation=["relu"], zero_grad=[0.0], lr=[0.1])
    assert grid.fingerprint(grid.expand(plain)[0], plain) == "983efd96f39449bf"
    depth = validated(
        activation=["relu"],
        zero_grad=[0.0],
        lr=[0.1],
        depth_study={"depth": [6], "activation": ["relu"], "lr": [0.1], "init": ["kaiming_normal"]},
    )
    assert {p.init for p in grid.depth_study_points(depth)} == {"kaiming_normal"}


def test_finished_points_are_recognised_by_fingerprint_and_seeds(tmp_path):
    config = validated(activation=["relu"], zero_grad=[0.0], lr=[0.1], training={"seeds": 2})
    point = grid.expand(config)[0]
    run_dir = tmp_path / point.id
    run_dir.mkdir()
    assert not grid.is_finished(point, config, run_dir)
    for name in ("epochs.csv", "layers.csv"):
        (run_dir / name).write_text("seed\n")
    summary = {"fingerprint": grid.fingerprint(point, config), "seeds": {"0": {}, "1": {}}}
    (run_dir / "point.json").write_text(json.dumps(summary))
    assert grid.is_finished(point, config, run_dir)
    three = validated(activation=["relu"], zero_grad=[0.0], lr=[0.1], training={"seeds": 3})
    assert not grid.is_finished(point, three, run_dir)
    longer = validated(
        activation=["relu"], zero_grad=[0.0], lr=[0.1], training={"epochs": 99, "seeds": 2}
    )
    assert not grid.is_finished(point, longer, run_dir)


def test_points_per_job_changes_no_fingerprint_and_must_be_positive():
    one = validated(activation=["relu"], zero_grad=[0.0], lr=[0.1])
    eight = validated(
        activation=["relu"], zero_grad=[0.0], lr=[0.1], training={"points_per_job": 8}
    )
    point = grid.expand(one)[0]
    assert grid.fingerprint(point, one) == grid.fingerprint(point, eight)
    with pytest.raises(cfg.ConfigError, match="points_per_job"):
        validated(activation=["relu"], zero_grad=[0.0], lr=[0.1], training={"points_per_job": 0})


def test_unfinished_jobs_keep_their_names_while_other_jobs_finish(tmp_path):
    """A cluster node reads the workflow again while other jobs finish: it must find its job
    under the same name, with the same points."""
    config = validated(
        activation=["relu", "elu"],
        zero_grad=[0.0],
        lr=[0.1, 0.01],
        model={"depth": [2, 3]},
        training={"points_per_job": 2, "seeds": 1},
    )
    planned = grid.unfinished_jobs(config, tmp_path)
    assert planned == grid.jobs(config)
    name, members = next(iter(planned.items()))
    for point in members:  # this job finishes
        run_dir = tmp_path / paths.run_dir(point.id)
        run_dir.mkdir(parents=True)
        for file in ("epochs.csv", "layers.csv"):
            (run_dir / file).write_text("seed\n")
        summary = {"fingerprint": grid.fingerprint(point, config), "seeds": {"0": {}}}
        (run_dir / "point.json").write_text(json.dumps(summary))
    later = grid.unfinished_jobs(config, tmp_path)
    assert name not in later
    assert later == {n: m for n, m in planned.items() if n != name}
