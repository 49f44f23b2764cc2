"""The optimizer study: each optimizer at its own learning rates, beside the main grid."""

from relulab.study import config as cfg
from relulab.study import grid


def study(**changes):
    base = {
        "activation": ["relu", "sigmoid"],
        "zero_grad": [0.0, 1.0],
        "lr": [0.001],
        "training": {"optimizer": "adam"},
        "optimizer_study": [
            {"optimizer": "sgd", "lr": [0.5, 2.0], "activation": ["relu", "elu"]},
            {"optimizer": "momentum", "lr": [0.05]},
        ],
    }
    return cfg.validate({**base, **changes})


def test_each_entry_trains_its_optimizer_at_its_own_learning_rates():
    points = grid.optimizer_study_points(study())
    sgd = {(p.activation, p.lr) for p in points if p.optimizer == "sgd"}
    assert sgd == {("relu", 0.5), ("relu", 2.0), ("elu", 0.5), ("elu", 2.0)}
    momentum = [p for p in points if p.optimizer == "momentum"]
    # The schema's defaults: ReLU and the four remedies, f'(0) = 0 only.
    assert {p.activation for p in momentum} == {"relu", "leaky_relu", "prelu", "rrelu", "elu"}
    assert {p.lr for p in momentum} == {0.05}
    assert {p.zero_grad for p in momentum if p.activation == "relu"} == {0.0}


def test_the_main_grid_keeps_its_optimizer_and_the_study_adds_to_it():
    config = study()
    main = grid.main_grid(config)
    assert {p.optimizer for p in main} == {"adam"}
    every = grid.expand(config)
    assert len(every) == len(main) + len(grid.optimizer_study_points(config))
    assert len({p.id for p in every}) == len(every)


def test_no_optimizer_study_adds_nothing():
    config = study(optimizer_study=[])
    assert grid.optimizer_study_points(config) == []
    assert grid.expand(config) == grid.main_grid(config)
