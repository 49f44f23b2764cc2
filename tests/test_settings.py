"""The study's settings, typed once (``relulab.study.settings``).

The grid, the jobs and every point's fingerprint come out of the typed settings exactly as
they came out of the raw config before (a changed fingerprint would retrain a finished study);
the settings cannot be changed after they are made; and past validation, nothing in the
training, study or workflow code reads raw config keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml

import relulab
from relulab.study import config as cfg
from relulab.study import grid, settings

ROOT = Path(__file__).resolve().parents[1]

# Hashes of {point id: fingerprint} and {job name: point ids} as the code before the typed
# settings computed them for the project's two configs.
BEFORE = {
    "config.yaml": ("c6439ffee4d41016", "b72decebd6a50b4f"),
    "smoke.yaml": ("180b6e875d2c6fb3", "cdc8d6515887671a"),
}


def project_config(name: str) -> dict:
    merged = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    merged.update(yaml.safe_load((ROOT / "config" / name).read_text()))
    return cfg.validate(merged)


def digest(value) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_points_jobs_and_fingerprints_are_what_they_were(name):
    study = settings.from_config(project_config(name))
    fingerprints = {point.id: grid.fingerprint(point, study) for point in grid.expand(study)}
    jobs = {job: [p.id for p in members] for job, members in grid.jobs(study).items()}
    assert (digest(fingerprints), digest(jobs)) == BEFORE[name]


def test_a_validated_config_and_its_settings_give_the_same_grid():
    config = project_config("config.yaml")
    study = settings.from_config(config)
    assert relulab.expand_grid(config) == relulab.expand_grid(study)
    assert settings.of(study) is study
    point = grid.main_grid(config)[0]
    assert grid.fingerprint(point, config) == grid.fingerprint(point, study)


def test_settings_are_frozen_and_typed():
    study = settings.from_config(project_config("smoke.yaml"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        study.training.epochs = 1  # type: ignore[misc]
    assert isinstance(study.training.seeds, tuple)
    assert all(isinstance(lr, float) for axes in study.grids for lr in axes.lrs)
    assert study.tracking.experiment == study.name == "relulab-smoke"


def test_added_grids_take_the_main_grid_axes_they_do_not_name():
    config = project_config("config.yaml")
    study = settings.from_config(config)
    sgd = study.added[0]
    assert sgd.optimizers == ("sgd",) and sgd.lrs == (0.3, 3.0)
    assert sgd.precisions == study.main.precisions and sgd.depths == study.main.depths
    mixed = next(a for a in study.added if a.precisions == ("mixed_float16",))
    assert mixed.zero_grads == (0.0, 1.0)
    assert study.depth_study is study.added[-1]
    assert study.depth_study.depths == (3, 6, 10)
    assert study.depth_study.inits == ("default", "kaiming_normal")
    no_depth = settings.from_config(
        {**config, "depth_study": {**config["depth_study"], "enabled": False}}
    )
    assert no_depth.depth_study is None and len(no_depth.added) == len(study.added) - 1


# Where raw config keys may still be read: the validation itself, the folder a study works in
# (named before validation), and the typed settings that are made from it.
READS_RAW_CONFIG = {"study/config.py", "study/paths.py", "study/settings.py"}
RAW_KEY = re.compile(r"""config(?:\[["']|\.get\(["'])""")


def test_past_validation_no_code_reads_raw_config_keys():
    code = [
        *(ROOT / "src" / "relulab" / "study").glob("*.py"),
        *(ROOT / "src" / "relulab" / "train").glob("*.py"),
        *(ROOT / "src" / "relulab" / "report").rglob("*.py"),
        *(ROOT / "workflow" / "rules").glob("*.smk"),
        *(ROOT / "workflow" / "scripts").glob("*.py"),
        ROOT / "src" / "relulab" / "cli.py",
    ]
    allowed = {ROOT / "src" / "relulab" / name for name in READS_RAW_CONFIG}
    readers = [
        str(path.relative_to(ROOT))
        for path in code
        if path not in allowed and RAW_KEY.search(path.read_text())
    ]
    assert readers == []
