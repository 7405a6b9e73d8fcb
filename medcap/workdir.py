"""Run workdirs and results collections on disk.

A run's workdir holds its `config.json` and everything the run wrote. A
results collection (`results/clip`, `results/mtl`) holds several runs and a
`runs.json` naming its default one, so that `--workdir results/clip` answers
with that run. Below the trainer and the paper reports, which both use it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger("medcap.training")

RESULTS_INDEX = "runs.json"


def write_results_index(results_dir: str | Path, default: str, runs: list[str]) -> Path:
    """Marks `results_dir` as a collection of run workdirs (a paper's several
    experiments) whose `default` run answers `--workdir results_dir`."""
    results_dir = Path(results_dir)
    if default not in runs:
        raise ValueError(f"default run {default!r} is not among {runs}")
    path = results_dir / RESULTS_INDEX
    path.write_text(json.dumps({"default": default, "runs": runs}, indent=2) + "\n")
    return path


def resolve_workdir(workdir: str | Path) -> Path:
    """A run's workdir, or the default run of a results collection
    (`runs.json`, written by the paper reports), e.g. `results/clip`."""
    workdir = Path(workdir)
    if (workdir / "config.json").exists():
        return workdir
    index = workdir / RESULTS_INDEX
    if index.exists():
        default = workdir / json.loads(index.read_text())["default"]
        if not (default / "config.json").exists():
            raise FileNotFoundError(f"{index}: default run {default} has no config.json (was it trained?)")
        log.info("%s holds several runs; using its default run %s", workdir, default)
        return default
    runs = sorted(str(p.parent) for p in workdir.glob("*/config.json")) if workdir.is_dir() else []
    hint = f"; runs inside: {', '.join(runs)}" if runs else ""
    raise FileNotFoundError(f"{workdir}: not a medcap workdir (no config.json){hint}")
