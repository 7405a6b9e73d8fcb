"""The comparison experiments (`<system>_iu_xray` and `<system>_mimic`, `make
compare-iu-xray` and `make compare-mimic`) read
one dataset, split and synthetic tree and score alike, so `medcap compare`
accepts their runs; checked on the configs, paper and smoke alike."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medcap.config import load_experiment

MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"


def _compared(variable: str) -> list[str]:
    match = re.search(rf"^{variable} = (.+)$", MAKEFILE.read_text(), flags=re.M)
    return match.group(1).split()


def _terms(config) -> tuple:
    d, e = config.data, config.eval
    return (d.name, d.variant, d.split_seed, d.source_dir, d.synthetic_num, d.synthetic_seed, d.synthetic_image_size,
            d.synthetic_reports, d.max_examples, e.split, e.bleu_flavour, e.ce_uncertain)


@pytest.mark.parametrize("smoke", [False, True])
@pytest.mark.parametrize(
    "variable, suffix, split",
    [("COMPARE_IU_XRAY", "_iu_xray", ("iu_xray", "r2gen")), ("COMPARE_MIMIC", "_mimic", ("mimic", "official"))],
)
def test_every_compared_system_reads_the_same_data_and_scores_alike(smoke, variable, suffix, split):
    names = _compared(variable)
    assert len(names) >= 4 and all(name.endswith(suffix) for name in names)
    terms = set()
    for name in names:
        config = load_experiment(name, smoke=smoke)  # with no dataset: the synthetic overrides applied
        assert config.name == name
        assert {"constant", "random_train"} <= set(config.eval.baselines)
        terms.add(_terms(config))
    assert len(terms) == 1, terms
    [(dataset, variant, *_rest)] = terms
    assert (dataset, variant) == split
    assert _rest[5] == "realistic"
