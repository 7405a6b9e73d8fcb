"""Run workdirs and results collections (medcap.workdir)."""

from __future__ import annotations

import pytest

from medcap.workdir import resolve_workdir, write_results_index


def test_results_collection_resolves_to_its_default_run(tmp_path):
    for run in ("proposed", "baseline"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"no config.json\); runs inside: .*baseline, .*proposed"):
        resolve_workdir(tmp_path)
    write_results_index(tmp_path, "proposed", ["proposed", "baseline"])
    assert resolve_workdir(tmp_path) == tmp_path / "proposed"
    assert resolve_workdir(tmp_path / "baseline") == tmp_path / "baseline"
    with pytest.raises(ValueError, match="not among"):
        write_results_index(tmp_path, "missing", ["proposed"])
