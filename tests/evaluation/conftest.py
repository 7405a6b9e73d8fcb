"""Shared fixtures: real IU X-ray report text and one running METEOR jar per session.

The jar takes seconds to start, so tests share one of ours and one of
pycocoevalcap's; only the crash test and the end-to-end CLI test start more.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from medcap.testing import shared_path


@pytest.fixture(scope="session")
def iu_reports() -> dict[str, str]:
    """R2Gen-cleaned IU X-ray test reports (as R2Gen scores them), id -> text."""
    from medcap.text import clean_report

    data = json.loads(shared_path("data/iu_xray/annotation.json").read_text())
    return {e["id"]: clean_report(e["report"], "iu_xray") for e in data["test"]}


@pytest.fixture(scope="session")
def iu_raw_reports() -> dict[str, str]:
    """Raw (uncleaned) IU X-ray train reports, id -> text."""
    data = json.loads(shared_path("data/iu_xray/annotation.json").read_text())
    return {e["id"]: e["report"] for e in data["train"]}


def pairings(
    reports: dict[str, str],
) -> dict[str, tuple[dict[str, list[str]], dict[str, list[str]]]]:
    """Ways to pair real reports: (references, predictions) per name."""
    ids = sorted(reports)
    n = len(ids)
    rng = np.random.default_rng(3)
    random_order = rng.permutation(n)
    refs = {i: [reports[i]] for i in ids}
    return {
        "shifted": (refs, {ids[k]: [reports[ids[(k + 1) % n]]] for k in range(n)}),
        "same": (refs, {i: [reports[i]] for i in ids}),
        "random": (refs, {ids[k]: [reports[ids[random_order[k]]]] for k in range(n)}),
        # Two references per id: its own report and a neighbour's; predict a random one.
        "two_refs": (
            {ids[k]: [reports[ids[k]], reports[ids[(k + 7) % n]]] for k in range(n)},
            {ids[k]: [reports[ids[random_order[k]]]] for k in range(n)},
        ),
    }


@pytest.fixture(scope="session")
def meteor_jar():
    from medcap.evaluation.text_metrics import MeteorJar, find_java

    if find_java() is None:
        pytest.skip("java is not installed: METEOR cannot run")
    with MeteorJar() as jar:
        yield jar


@pytest.fixture(scope="session")
def pycoco_meteor(meteor_jar):
    """pycocoevalcap's own `Meteor` class (its protocol code, its float parsing) driving the
    shared jar process, which runs pycocoevalcap's jar with pycocoevalcap's command line.
    Sharing the process saves a second multi-second jar start."""
    import threading

    from pycocoevalcap.meteor.meteor import Meteor

    class SharedProcessMeteor(Meteor):
        def __init__(self, process):  # noqa: ANN001  (no new jar)
            self.meteor_p = process
            self.lock = threading.Lock()

        def __del__(self):  # the shared process is closed by its owner
            pass

    return SharedProcessMeteor(meteor_jar._process)
