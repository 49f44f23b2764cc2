"""Which cells the bifurcation measures again on another GEMM code path, and how.

Whether an exact zero appears depends on the bits of every product, so on the kernel path:
the same initialisation can bifurcate under one BLAS code path and not under another. This
torch (see ``torch.__config__.show()``) computes float32 matrix products with Intel MKL, which
picks a code path for the CPU it finds unless ``MKL_CBWR`` (conditional numerical
reproducibility) fixes one; ``MKL_CBWR=COMPATIBLE`` is MKL's documented path that gives the
same results on every x86 CPU. MKL reads the variable when it loads, so it is set in the
environment of a job of its own before torch is imported (``workflow/scripts/bifurcation.py``).
(``ATEN_CPU_CAPABILITY=avx2`` changes ATen's elementwise kernels, not MKL's products; on an
AVX-512 CPU it left the bifurcation unchanged.)

The second path costs about twice the first (COMPATIBLE runs MKL's generic kernels), so it
measures only a subset: the ``other_gemm_path`` settings' precisions and architectures that the
study measures too, with their first ``inits`` initialisations, compared with the default path's
rows of the same initialisations. Nothing here imports torch: the workflow reads it at parse time.
"""

from __future__ import annotations

DEFAULT = "default"


def other_path(settings: dict) -> dict:
    """The ``other_gemm_path`` entry of a ``bifurcation`` config (empty when absent)."""
    return dict(settings.get("other_gemm_path") or {})


def _architectures(settings: dict) -> list[tuple[int, int]]:
    listed = settings.get("architectures") or []
    if listed:
        return [(int(a["width"]), int(a["depth"])) for a in listed]
    return [(int(w), int(d)) for w in settings["widths"] for d in settings["depths"]]


def _inits(settings: dict, precision: str) -> int:
    return int((settings.get("inits_by_precision") or {}).get(precision, settings["inits"]))


def architectures(settings: dict) -> list[dict[str, int]]:
    """The architectures measured on the other path: those asked for (all of the study's when
    none are) that the study measures too."""
    asked = other_path(settings).get("architectures") or []
    measured = _architectures(settings)
    if not asked:
        return [{"width": w, "depth": d} for w, d in measured]
    pairs = dict.fromkeys((int(a["width"]), int(a["depth"])) for a in asked)
    return [{"width": w, "depth": d} for w, d in pairs if (w, d) in measured]


def precisions(settings: dict) -> list[str]:
    """The precisions measured on the other path: those asked for that the study measures too
    (none when the other path is disabled or shares no architecture with the study)."""
    other = other_path(settings)
    if not other.get("enabled", False) or not architectures(settings):
        return []
    return [p for p in other.get("precisions", []) if p in settings["precisions"]]


def other_settings(settings: dict) -> dict:
    """A ``bifurcation`` config for the other path: its ``architectures`` and, per precision,
    the first ``inits`` initialisations (at most the study's)."""
    inits = {
        p: min(int(other_path(settings)["inits"]), _inits(settings, p))
        for p in precisions(settings)
    }
    return {**settings, "architectures": architectures(settings), "inits_by_precision": inits}


def env(settings: dict) -> dict[str, str]:
    """The environment variables that select the other path."""
    return {str(k): str(v) for k, v in (other_path(settings).get("env") or {}).items()}


def name(settings: dict) -> str:
    """The other path's label (the ``gemm_path`` column and its results folder)."""
    return str(other_path(settings).get("name", "other"))
