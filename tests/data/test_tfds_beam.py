"""`medcap data prepare --beam`: the Beam build equals the in-process build, example for example.

apache-beam pins protobuf, pyarrow and pillow a major version below what
the rest of medcap runs with, so it lives in its own environment
(`make beam-env`, which `make test` builds): the builds run there, in a
subprocess (`tests/data/beam_equality.py`), and this test reads the result.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from medcap.data import tfds_builders
from medcap.data.base import DataError

REPO = Path(__file__).resolve().parents[2]
BEAM_PYTHON = Path(os.environ.get("MEDCAP_BEAM_PYTHON", REPO / ".venv-beam" / "bin" / "python"))


@pytest.mark.slow
def test_a_beam_build_on_the_direct_runner_equals_the_plain_build(tmp_path):
    """IU X-ray (two views per study) and MIMIC (vitals, acuity, findings,
    text vectors): every split holds the same ids, and every feature of
    every example is equal (images byte for byte after decoding)."""
    if not BEAM_PYTHON.is_file():
        pytest.skip(f"no Beam environment at {BEAM_PYTHON}: run `make beam-env`")
    proc = subprocess.run(
        [str(BEAM_PYTHON), str(REPO / "tests" / "data" / "beam_equality.py"), str(tmp_path)],
        capture_output=True, text=True, timeout=900, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    splits = [key for key in result if "/" in key and not key.endswith("metadata_equal")]
    # Each split of each Beam build went through a Beam transform, examples and all.
    assert sorted(result["beam_transforms"]) == sorted(len(result[key]["beam"]) for key in splits)
    assert {key.split("/")[0] for key in splits} == {"iu_xray", "mimic"}
    for key in splits:
        entry = result[key]
        assert entry["plain"] and entry["plain"] == entry["beam"], key
        assert entry["differ"] == [], key
    assert {"image", "image_1"} <= set(result["iu_xray/train"]["features"])
    assert {"vitals", "acuity", "findings"} <= set(result["mimic/train"]["features"])
    assert result["iu_xray/metadata_equal"] and result["mimic/metadata_equal"]


def test_beam_options_need_apache_beam_or_say_how_to_get_it():
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match=r"pip install 'medcap\[beam\]'"):
            tfds_builders.beam_pipeline_options("--runner=DirectRunner")
    else:
        options = tfds_builders.beam_pipeline_options("--direct_num_workers=2")
        assert options.get_all_options()["runner"] == "DirectRunner"
