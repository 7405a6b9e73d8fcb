"""Markdown results tables."""

from __future__ import annotations

from medcap.evaluation import report


def _rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|")
    ]


def test_results_table_puts_paper_ours_and_baselines_side_by_side():
    ours = {
        "Bleu_1": 0.31234,
        "Bleu_2": 0.2,
        "METEOR": None,
        "ci_low/Bleu_1": 0.3,
        "ci_high/Bleu_1": 0.32,
        "nltk/Bleu_1": 0.3125,
        "meta/bleu_flavour": "nltk",
        "meta/metrics": "bleu,meteor",
        "meta/meteor": "unavailable: java not found on PATH; install ...",
    }
    paper = {"Bleu_1": 0.309, "Bleu_2": 0.205}
    table = report.results_table(
        ours,
        paper=paper,
        baselines={"constant": {"Bleu_1": 0.2, "Bleu_2": 0.1}, "random_train": {"Bleu_1": 0.15}},
    )
    rows = _rows(table)
    assert rows[0] == ["metric", "paper", "ours", "baseline: constant", "baseline: random_train"]
    body = {r[0]: r[1:] for r in rows[2:]}
    assert body["`Bleu_1`"] == ["0.3090", "0.3123 [0.3000, 0.3200]", "0.2000", "0.1500"]
    assert body["`Bleu_2`"] == ["0.2050", "0.2000", "0.1000", "-"]
    assert body["`METEOR`"] == ["-", "n/a", "-", "-"]
    assert body["`nltk/Bleu_1`"][1] == "0.3125"
    assert (
        "BLEU flavour: nltk" in table and "METEOR unavailable" in table and "bootstrap 95%" in table
    )
    assert report.SYNTHETIC_BANNER not in table


def test_synthetic_banner_and_key_selection():
    table = report.results_table(
        {"Bleu_4": 0.1, "CIDEr": 0.2, "ce/micro_f1": 0.3},
        synthetic=True,
        keys=["Bleu_4"],
        title="IU X-ray",
    )
    assert table.startswith("### IU X-ray\n\n" + report.SYNTHETIC_BANNER)
    assert "not comparable with the paper" in table
    assert len(_rows(table)) == 3 and "CIDEr" not in table


def test_t_test_table_and_listing():
    tests = {"Bleu_2": {"t": 3.2, "p": 0.00006, "mean_a": 0.2159, "mean_b": 0.2295}}
    table = report.t_test_table(tests, paper_p_values={"Bleu_2": 0.00006})
    assert _rows(table)[2] == ["`Bleu_2`", "0.2159", "0.2295", "3.200", "0.00006", "0.00006"]
    listing = report.score_listing(
        {
            "Bleu_1": 0.5,
            "Bleu_2": None,
            "Bleu_3": 0.1,
            "Bleu_4": 0.05,
            "METEOR": None,
            "ROUGE_L": None,
            "CIDEr": None,
            "meta/metrics": "bleu",
            "meta/normalisation": "x",
        }
    )
    assert listing.splitlines()[0].split() == ["Bleu_1", "0.5000"]
    assert "METEOR" not in listing and "meta/normalisation: x" in listing
