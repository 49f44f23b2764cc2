"""Which study a command means, and where it lives.

A study is named by its config's ``study`` key and works in ``studies/<study>/`` under the
project root (``relulab.study.paths``). Commands that read a study (``relulab status``,
``relulab ui``, ``bin/study -n``'s plan) find it here: from the config files given (as given
to Snakemake), from a name (its config is the one in ``config/`` that names it), or, with
neither, the study that ran last (the default study when none has run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from relulab.study import paths
from relulab.study.settings import Study as StudySettings

DEFAULT_CONFIG = Path("config") / "config.yaml"


class StudyNotFoundError(LookupError):
    """No study, or no config of it, matches what was asked; the message says what to do."""


@dataclass(frozen=True)
class Study:
    name: str
    settings: StudySettings  # the validated config, typed
    folder: Path  # Snakemake's working directory for the study

    @property
    def results(self) -> Path:
        return self.folder / paths.RESULTS


def read_config(files: Sequence[str | Path], overrides: dict | None = None) -> dict:
    """The validated config of a study: like the Snakefile, each file given replaces the
    default study's, and ``overrides`` (Snakemake's ``--config``) come last."""
    import yaml

    from relulab.study import config as cfg

    merged: dict = {}
    for path in files or [DEFAULT_CONFIG]:
        merged.update(yaml.safe_load(Path(path).read_text()) or {})
    merged.update(overrides or {})
    return cfg.validate(merged)


def config_files_naming(name: str, root: Path) -> list[Path]:
    """The config files under ``root/config/`` whose study is ``name``."""
    import yaml

    found = []
    for path in sorted((root / "config").glob("*.yaml")):
        try:
            content = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(content, dict) and paths.study_name(content) == name:
            found.append(path)
    return found


def last_active(folder: Path) -> float:
    """When a study's folder last saw a run: the newest change to Snakemake's records of its
    jobs (``.snakemake/metadata``, written as jobs start and end) or to its logs."""
    seen = [folder, folder / ".snakemake" / "metadata", folder / paths.LOGS]
    return max(path.stat().st_mtime for path in seen if path.exists())


def studies(root: Path) -> list[Path]:
    """The studies' folders under ``root``, the one that ran last first."""
    folder = root / paths.STUDIES
    found = [path for path in folder.iterdir() if path.is_dir()] if folder.is_dir() else []
    return sorted(found, key=last_active, reverse=True)


def shown(path: Path) -> Path:
    """``path`` as a reader would type it: relative to the current folder when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def project_root(start: str | Path = ".") -> Path:
    """The folder of the Snakefile: ``start`` or the nearest folder above it that has one
    (so that commands work from inside a study's folder too); ``start`` when none has."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if (folder / "Snakefile").is_file():
            return folder
    return start


def locate(
    configfiles: Sequence[str | Path] = (),
    name: str | None = None,
    directory: str | Path | None = None,
    root: str | Path | None = None,
    overrides: dict | None = None,
) -> Study:
    """The study that ``configfiles`` or ``name`` mean (the one that ran last when neither is
    given), in ``directory`` when it ran with ``snakemake --directory``. ``root`` is the
    project's folder (by default the one around the current directory)."""
    root = project_root() if root is None else Path(root)
    if not configfiles and name is None and directory is None:
        ran = studies(root)
        if ran:
            name = ran[0].name
    if not configfiles and name is not None:
        configfiles = config_files_naming(name, root)
        if not configfiles:
            raise StudyNotFoundError(
                f"no config in {root / 'config'} names the study {name!r}; "
                "give it with --configfile"
            )
        configfiles = configfiles[:1]
    elif not configfiles:
        configfiles = [root / DEFAULT_CONFIG]
    from relulab.study import settings

    config = read_config(configfiles, overrides)
    typed = settings.from_config(config)
    if name is not None and typed.name != name:
        raise StudyNotFoundError(f"the config names the study {typed.name!r}, not {name!r}")
    folder = Path(directory) if directory is not None else paths.study_dir(config, root)
    return Study(typed.name, typed, folder)
