"""Which checkpoint a training job may resume: only one made with the same settings, the same
seeds in the same order, on the same device and by the same code.

Anything else starts the point afresh rather than refusing: the settings a user runs now are
the ones they want trained, and refusing would only send them to delete the checkpoint by hand.
Nothing is lost: the checkpoint is moved aside (``superseded/`` in the point's folder), and one
line in the job's log says what differed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import torch

from relulab.train.core import Settings

log = logging.getLogger(__name__)

# The provenance a checkpoint must share with the job that resumes it: the device, the torch
# that computes and relulab's source (``provenance.code_version``).
ORIGIN = ("device", "torch", "code_sha256")
# Where a checkpoint that a job cannot resume is moved (under the group's first point's folder).
SUPERSEDED = "superseded"


def identity(settings: Settings) -> dict:
    """What a checkpoint must have been made with for a job to resume it: the settings'
    fingerprint, the members' seeds and points in order, and the origin (device, code)."""
    return {
        "fingerprint": settings.fingerprint,
        "seeds": list(settings.seeds),
        "points": settings.points,
        **settings.origin,
    }


def _held_identity(saved: dict) -> dict:
    state = saved.get("relulab", {})
    return {
        "fingerprint": state.get("fingerprint"),
        "seeds": state.get("seeds"),
        "points": state.get("points"),
        **state.get("origin", {}),
    }


def _differences(held: dict, expected: dict) -> str:
    """``held`` against ``expected``, one clause per key that differs."""
    return "; ".join(
        f"{key} {held.get(key)!r}, now {value!r}"
        for key, value in expected.items()
        if held.get(key) != value
    )


def resumable(checkpoint: Path, expected: dict, names: str = "the point") -> int | None:
    """The number of epochs a checkpoint made with ``expected`` (``identity``) holds;
    None when there is nothing to resume.

    A checkpoint of other seeds, settings, device or code is not resumed: its networks are
    not the ones this job trains (a seed's state never goes to another seed, and epochs of
    other code never join this code's). The point starts afresh, and the checkpoint is moved
    aside (``superseded/``), not deleted, with one line in the job's log saying why.
    """
    if not checkpoint.exists():
        return None
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a torn checkpoint is simply not resumable
        log.warning("ignoring unreadable checkpoint %s", checkpoint)
        return None
    differences = _differences(_held_identity(saved), expected)
    if differences:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        aside = checkpoint.parent.parent / SUPERSEDED / f"{stamp}.ckpt"
        aside.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.replace(aside)
        log.warning(
            "starting %s afresh: its checkpoint after epoch %d was made with %s (moved to %s)",
            names,
            int(saved["epoch"]) + 1,
            differences,
            aside,
        )
        return None
    return int(saved["epoch"]) + 1
