"""``relulab audit``'s loading: factories, checkpoints with a prefix, data by name or path."""

from __future__ import annotations

import pytest
import torch
from helpers import monitored

from relulab.monitor import audit


def test_a_lightning_style_prefix_is_found_and_removed(tmp_path):
    model = monitored.mlp_factory()
    with torch.no_grad():
        model[0].weight.fill_(0.25)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "global_step": 7}, tmp_path / "run.ckpt")
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    for name, step in (("run.ckpt", 7), ("plain.pt", 0)):
        loaded, found_step = audit.load_model("helpers.monitored:mlp_factory", tmp_path / name)
        assert found_step == step
        assert torch.equal(loaded[0].weight, model[0].weight)


def test_a_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    torch.save({"state_dict": {"net.other.weight": torch.zeros(1)}}, tmp_path / "x.ckpt")
    with pytest.raises(ValueError, match="do not match"):
        audit.load_model("helpers.monitored:mlp_factory", tmp_path / "x.ckpt")


def test_data_by_import_path_or_relulab_name():
    assert len(audit.load_data("helpers.monitored:dataset")) == 300
    digits = audit.load_data("digits")
    x, y = digits[0]
    assert x.dtype == torch.float32 and x.shape == (64,) and y.dtype == torch.int64
    with pytest.raises(ValueError, match="pkg.module:function"):
        audit.load_data("no_such_dataset")
    with pytest.raises(ValueError, match="import path"):
        audit.load_object("helpers.monitored")
