"""IU X-ray reader: R2Gen's annotation.json and the OpenI XML release, real and synthetic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from medcap.data import synthetic
from medcap.data.base import DataError, validate_example
from medcap.data.iu_xray import IU_XRAY, patient_id_of
from medcap.registry import DATASETS
from medcap.testing import shared_path
from medcap.text import clean_report

NUM = 60


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return IU_XRAY.synthesize(tmp_path_factory.mktemp("iu"), num=NUM, seed=0, image_size=64)


@pytest.fixture
def copy(tree: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tree, tmp_path / "copy"))


def _annotation(root: Path) -> dict:
    return json.loads((root / "annotation.json").read_text(encoding="utf-8"))


def _all(result) -> list[dict]:
    return [e for split in result.splits.values() for e in split]


def test_registered_and_patient_ids():
    assert DATASETS.get("iu_xray") is IU_XRAY
    assert patient_id_of("CXR2384_IM-0942") == "CXR2384"
    assert patient_id_of("CXR1_1_IM-0001") == "CXR1"
    assert patient_id_of("odd") == "odd"


def test_real_shared_annotation_split_sizes():
    path = shared_path("data/iu_xray/annotation.json")
    result = IU_XRAY.read(path.parent, options={"check_images": "none"})
    assert result.counts() == {"train": 2069, "val": 296, "test": 590}
    examples = _all(result)
    assert len({e["id"] for e in examples}) == 2955
    assert all(isinstance(e["image"], tuple) and len(e["image"]) == 2 for e in examples)
    first = result.splits["train"][0]
    assert first["id"] == "CXR2384_IM-0942" and first["patient_id"] == "CXR2384"
    assert first["report_clean"] == clean_report(first["report"], "iu_xray")
    assert first["report_clean"].startswith("the heart size and pulmonary vascularity appear within normal limits .")
    random = IU_XRAY.read(path.parent, variant="random_721", split_seed=0, options={"check_images": "none"}).counts()
    assert sum(random.values()) == 2955
    assert abs(random["train"] - 0.7 * 2955) <= 1 and abs(random["val"] - 0.2 * 2955) <= 1


def test_real_annotation_without_images_fails_the_exists_check():
    path = shared_path("data/iu_xray/annotation.json")
    with pytest.raises(DataError) as info:
        IU_XRAY.read(path.parent)
    assert info.value.file == str(path) and info.value.record.startswith("train[0] (id CXR2384_IM-0942)")
    assert info.value.field == "image_path[0]" and "missing image file" in str(info.value)


def test_synthetic_r2gen_layout(tree: Path):
    annotation = _annotation(tree)
    result = IU_XRAY.read(tree)
    assert result.counts() == {split: len(annotation[split]) for split in ("train", "val", "test")}
    assert result.info["format"] == "r2gen" and result.skipped == []
    truth = synthetic.load_truth(result.info["truth_file"])
    for example in _all(result):
        validate_example(example)
        assert len(example["image"]) == 2 and all(Path(p).is_file() for p in example["image"])
        assert example["image"][0].endswith(f"{example['id']}/0.png")
        assert example["report_clean"] == clean_report(example["report"], "iu_xray")
        assert example["patient_id"] == patient_id_of(example["id"]) and example["id"] in truth


def test_synthetic_openi_layout_matches_r2gen(tree: Path):
    openi = IU_XRAY.read(tree, variant="random_721", options={"format": "openi", "check_images": "decode"})
    assert openi.info["format"] == "openi" and openi.info["studies"] == openi.info["xml_reports"] == NUM
    assert openi.info["studies_without_images"] == openi.info["studies_without_sections"] == 0
    assert openi.info["impression_fallbacks"] == NUM - sum(len(v) for v in _annotation(tree).values()) > 0
    r2gen = {e["id"]: e for e in _all(IU_XRAY.read(tree))}
    by_id = {e["id"]: e for e in _all(openi)}
    assert set(r2gen) < set(by_id)
    for study_id, example in r2gen.items():
        assert by_id[study_id]["report"] == example["report"]
        assert by_id[study_id]["patient_id"] == example["patient_id"]
        assert Path(by_id[study_id]["image"]).read_bytes() == Path(example["image"][0]).read_bytes()
    assert all(isinstance(e["image"], str) for e in by_id.values())


def test_with_both_sources_random_721_reads_the_openi_release_and_says_so(tree: Path):
    """Paper 002 counts the OpenI release; R2Gen's file keeps only the studies with FINDINGS."""
    chosen = IU_XRAY.read(tree, variant="random_721")
    assert chosen.info["format"] == "openi" and chosen.info["source"].startswith("OpenI XML")
    assert chosen.info["studies"] == NUM and chosen.info["images"] == 2 * NUM
    forced = IU_XRAY.read(tree, variant="random_721", options={"format": "r2gen"})
    annotated = sum(len(v) for v in _annotation(tree).values())
    assert forced.info["source"] == "R2Gen annotation.json" and forced.info["studies"] == annotated < NUM
    assert IU_XRAY.read(tree).info["format"] == "r2gen"  # R2Gen's own split needs its file


def test_random_721_is_patient_disjoint_and_seeded(tree: Path):
    a = IU_XRAY.read(tree, variant="random_721", split_seed=1, options={"format": "openi"})
    counts = a.counts()
    assert sum(counts.values()) == NUM
    assert (counts["train"], counts["val"], counts["test"]) == (42, 12, 6)
    patients = {name: {e["patient_id"] for e in split} for name, split in a.splits.items()}
    assert not (patients["train"] & patients["val"]) and not (patients["train"] & patients["test"]) and not (patients["val"] & patients["test"])
    ids = lambda r: {k: [e["id"] for e in v] for k, v in r.splits.items()}  # noqa: E731
    assert ids(a) == ids(IU_XRAY.read(tree, variant="random_721", split_seed=1, options={"format": "openi"}))
    assert ids(a) != ids(IU_XRAY.read(tree, variant="random_721", split_seed=2, options={"format": "openi"}))


def test_r2gen_variant_needs_annotation(copy: Path):
    (copy / "annotation.json").unlink()
    with pytest.raises(DataError, match="variant 'r2gen' needs R2Gen's annotation.json"):
        IU_XRAY.read(copy)
    assert sum(IU_XRAY.read(copy, variant="random_721").counts().values()) == NUM
    shutil.rmtree(copy / "ecgen-radiology")
    with pytest.raises(DataError, match="neither R2Gen's annotation.json nor OpenI's ecgen-radiology/ found"):
        IU_XRAY.read(copy, variant="random_721")


def test_missing_image_names_file_record_field(copy: Path):
    entry = _annotation(copy)["val"][1]
    (copy / "images" / entry["image_path"][1]).unlink()
    with pytest.raises(DataError) as info:
        IU_XRAY.read(copy)
    err = info.value
    assert err.file == str(copy / "annotation.json")
    assert err.record == f"val[1] (id {entry['id']})" and err.field == "image_path[1]"
    assert "missing image file" in str(err)
    result = IU_XRAY.read(copy, skip_invalid=True)
    assert len(result.skipped) == 1 and result.counts()["val"] == len(_annotation(copy)["val"]) - 1


def test_truncated_png_with_decode_check(copy: Path):
    entry = _annotation(copy)["train"][0]
    image = copy / "images" / entry["image_path"][0]
    image.write_bytes(image.read_bytes()[:300])
    IU_XRAY.read(copy)  # "exists" does not decode
    with pytest.raises(DataError) as info:
        IU_XRAY.read(copy, options={"check_images": "decode"})
    assert info.value.record == f"train[0] (id {entry['id']})" and info.value.field == "image_path[0]"
    assert "unreadable image" in str(info.value)


def test_malformed_annotation_and_fields(copy: Path):
    path = copy / "annotation.json"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"report":', '"report"', 1), encoding="utf-8")
    with pytest.raises(DataError) as info:
        IU_XRAY.read(copy)
    assert info.value.file == str(path) and info.value.record.startswith("line ")
    annotation = json.loads(text)
    annotation["test"][2]["report"] = ""
    annotation["train"][3]["image_path"] = "x.png"
    path.write_text(json.dumps(annotation), encoding="utf-8")
    with pytest.raises(DataError) as info:
        IU_XRAY.read(copy)
    assert info.value.record.startswith("train[3]") and info.value.field == "image_path"
    result = IU_XRAY.read(copy, skip_invalid=True)
    assert sorted((e.record.split(" ")[0], e.field) for e in result.skipped) == [("test[2]", "report"), ("train[3]", "image_path")]
    del annotation["val"]
    path.write_text(json.dumps(annotation), encoding="utf-8")
    with pytest.raises(DataError) as info:
        IU_XRAY.read(copy, skip_invalid=True)
    assert info.value.field == "val"


def test_non_utf8_annotation_names_line(copy: Path):
    path = copy / "annotation.json"
    lines = path.read_bytes().split(b"\n")
    target = next(i for i, line in enumerate(lines) if b'"report"' in line)
    lines[target] = lines[target].replace(b'"report": "', b'"report": "\xe9', 1)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError) as info:
        IU_XRAY.read(copy)
    assert info.value.record == f"line {target + 1}" and "not valid UTF-8" in str(info.value)


def _xml(root: Path, number: int) -> Path:
    return root / "ecgen-radiology" / f"{number}.xml"


def test_openi_xml_without_findings_or_impression_is_excluded(copy: Path):
    path = _xml(copy, 4)
    text = path.read_text(encoding="utf-8")
    for label in ("FINDINGS", "IMPRESSION"):
        start = text.index(f'<AbstractText Label="{label}"')
        end = text.index("\n", start)
        text = text[:start] + f'<AbstractText Label="{label}" />' + text[end:]
    path.write_text(text, encoding="utf-8")
    for skip_invalid in (False, True):
        result = IU_XRAY.read(copy, variant="random_721", skip_invalid=skip_invalid, options={"format": "openi"})
        assert result.skipped == [] and sum(result.counts().values()) == NUM - 1
        assert result.info["studies_without_sections"] == 1 and result.info["studies_without_images"] == 0
        assert result.info["xml_reports"] == NUM and result.info["studies"] == NUM - 1


def test_openi_xml_errors(copy: Path):
    path = _xml(copy, 7)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"<AbstractText Label=\"COMPARISON\">None.", b"<AbstractText Label=\"COMPARISON\">Non\xe9.", 1))
    with pytest.raises(DataError) as info:
        IU_XRAY.read(copy, variant="random_721", options={"format": "openi"})
    assert info.value.file == str(path) and info.value.record.startswith("line ") and "not valid UTF-8" in str(info.value)
    text = data.decode()
    start = text.index("<parentImage")
    path.write_text(text[:start] + '   <parentImage id=""/>\n</eCitation>\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        IU_XRAY.read(copy, variant="random_721", options={"format": "openi"})
    assert info.value.file == str(path) and info.value.field == "parentImage[0]@id" and "empty id" in str(info.value)
    path.write_text(text.replace("</eCitation>", "<unclosed></eCitation>"), encoding="utf-8")
    with pytest.raises(DataError, match="malformed XML"):
        IU_XRAY.read(copy, variant="random_721", options={"format": "openi"})


def test_check_reports_problems_in_both_layouts(copy: Path, tree: Path):
    assert IU_XRAY.check(tree).ok
    entry = _annotation(copy)["train"][0]
    (copy / "images" / entry["image_path"][0]).unlink()
    png = sorted((copy / "NLMCXR_png").glob("*-2001.png"))[5]
    png.write_bytes(png.read_bytes()[:100])
    report = IU_XRAY.check(copy)
    assert not report.ok and len(report.problems) == 2
    assert {(Path(p.file).name, p.field) for p in report.problems} == {
        ("annotation.json", "image_path[0]"),
        (f"{png.name.split('_')[0][3:]}.xml", "parentImage[1]@id"),
    }


# ---------------------------------------------------------------------------
# OpenI XML as the real release writes it (tests/fixtures/iu_xray_openi)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "iu_xray_openi"
FIXTURE_STUDIES = {
    "CXR1_1_IM-0001": (
        "CXR1",
        "The cardiac silhouette and mediastinum size are within normal limits. There is no pulmonary edema. There is no "
        "focal consolidation. There are no XXXX of a pleural effusion. There is no evidence of pneumothorax.",
        ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"],
    ),
    "CXR2_IM-0652": (
        "CXR2",
        "The cardiomediastinal silhouette is within normal limits for size and contour. The lungs are normally inflated "
        "without evidence of focal airspace disease, pleural effusion, or pneumothorax. Stable calcified granuloma within "
        "the right upper lung. No acute bone abnormality.",
        ["CXR2_IM-0652-1001", "CXR2_IM-0652-2001"],
    ),
    "CXR3_IM-1384": (  # FINDINGS empty: the IMPRESSION
        "CXR3",
        "No displaced rib fractures, pneumothorax, or pleural effusion identified. Well-expanded and clear lungs. "
        "Mediastinal contour within normal limits. No acute cardiopulmonary abnormality identified.",
        ["CXR3_IM-1384-1001", "CXR3_IM-1384-2001"],
    ),
    "CXR12_IM-0123": (
        "CXR12",
        "Heart size is mildly enlarged. There are small bilateral pleural effusions. No pneumothorax.",
        ["CXR12_IM-0123-1001", "CXR12_IM-0123-2001", "CXR12_IM-0123-3001"],
    ),
}
#: 4.xml and 6.xml list no parentImage; 5.xml's FINDINGS and IMPRESSION are empty.
FIXTURE_INFO = {
    "xml_reports": 7,
    "studies": 4,
    "studies_without_images": 2,
    "studies_without_sections": 1,
    "impression_fallbacks": 1,
}


@pytest.fixture
def openi_tree(tmp_path: Path) -> Path:
    """The fixture's XML plus an 8x8 PNG for every parentImage id, as NLMCXR_png has."""
    import re

    import numpy as np
    from PIL import Image

    root = Path(shutil.copytree(FIXTURE, tmp_path / "openi"))
    (root / "NLMCXR_png").mkdir()
    for index, xml in enumerate(sorted((root / "ecgen-radiology").glob("*.xml"))):
        for image_id in re.findall(r'<parentImage id="([^"]+)"', xml.read_text(encoding="utf-8")):
            pixels = np.full((8, 8), 10 * index, np.uint8)
            Image.fromarray(pixels, mode="L").save(root / "NLMCXR_png" / f"{image_id}.png")
    return root


def test_real_format_openi_excludes_and_counts_reports_without_images_or_text(openi_tree: Path):
    results = [
        IU_XRAY.read(openi_tree, variant="random_721"),
        IU_XRAY.read(openi_tree, variant="random_721", skip_invalid=True, options={"check_images": "decode"}),
        IU_XRAY.read(openi_tree, variant="random_721", split_seed=5, options={"format": "openi"}),
    ]
    for result in results:
        assert result.skipped == []
        assert {key: result.info[key] for key in FIXTURE_INFO} == FIXTURE_INFO
        assert result.info["format"] == "openi" and result.info["variant"] == "random_721"
        examples = _all(result)
        assert len(examples) == 4 and {e["id"] for e in examples} == set(FIXTURE_STUDIES)
        for example in examples:
            validate_example(example)
            patient, report, image_ids = FIXTURE_STUDIES[example["id"]]
            assert example["patient_id"] == patient and example["report"] == report
            assert example["report_clean"] == clean_report(report, "iu_xray")
            # random_721 encodes one view: the first parentImage.
            assert example["image"] == str(openi_tree / "NLMCXR_png" / f"{image_ids[0]}.png")
    # The excluded reports' images are never read: without them nothing changes.
    for image in (openi_tree / "NLMCXR_png").glob("CXR5_*.png"):
        image.unlink()
    again = IU_XRAY.read(openi_tree, variant="random_721", options={"check_images": "decode"})
    assert {key: again.info[key] for key in FIXTURE_INFO} == FIXTURE_INFO and again.skipped == []
    with pytest.raises(DataError, match="variant 'r2gen' needs R2Gen's annotation.json"):
        IU_XRAY.read(openi_tree)


def test_real_format_openi_errors_still_raise(openi_tree: Path):
    (openi_tree / "NLMCXR_png" / "CXR12_IM-0123-3001.png").unlink()
    with pytest.raises(DataError) as info:
        IU_XRAY.read(openi_tree, variant="random_721")
    err = info.value
    assert err.file == str(openi_tree / "ecgen-radiology" / "12.xml") and err.record == "report 12"
    assert err.field == "parentImage[2]@id" and "missing image file" in str(err)
    result = IU_XRAY.read(openi_tree, variant="random_721", skip_invalid=True)
    assert len(result.skipped) == 1 and result.info["studies"] == 3
    assert result.info["xml_reports"] == 7 and result.info["studies_without_images"] == 2


def test_data_check_lists_openi_exclusions_as_counts_not_problems(openi_tree: Path, capsys, monkeypatch):
    import medcap.cli

    # Only the data commands: the other command groups are not under test here.
    monkeypatch.setattr(medcap.cli, "COMMAND_MODULES", ("medcap.cli", "medcap.data.cli"))
    report = IU_XRAY.check(openi_tree)
    assert report.ok and report.problems == []
    assert sum(report.counts[split] for split in ("train", "val", "test")) == 4
    assert report.counts["studies_without_images"] == 2 and report.counts["studies_without_sections"] == 1
    assert medcap.cli.main(["data", "check", "iu_xray", "--source", str(openi_tree)]) == 0
    out = capsys.readouterr().out
    assert "studies_without_images=2 studies_without_sections=1" in out and "no problems found" in out
    assert medcap.cli.main(["data", "check", "iu_xray", "--source", str(openi_tree), "--config", "random_721", "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["ok"] is True and checked["problems"] == []
    assert checked["counts"]["studies_without_images"] == 2 and checked["counts"]["studies_without_sections"] == 1
    # A real problem next to the exclusions is still one problem.
    (openi_tree / "NLMCXR_png" / "CXR2_IM-0652-2001.png").write_bytes(b"\x89PNG\r\n")
    assert medcap.cli.main(["data", "check", "iu_xray", "--source", str(openi_tree)]) == 1
    captured = capsys.readouterr()
    assert "1 problem(s):" in captured.err and "2.xml: report 2: field 'parentImage[1]@id': unreadable image" in captured.err
