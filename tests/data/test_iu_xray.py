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
    assert openi.info["format"] == "openi" and openi.info["studies"] == NUM
    assert openi.info["impression_fallbacks"] == NUM - sum(len(v) for v in _annotation(tree).values()) > 0
    r2gen = {e["id"]: e for e in _all(IU_XRAY.read(tree))}
    by_id = {e["id"]: e for e in _all(openi)}
    assert set(r2gen) < set(by_id)
    for study_id, example in r2gen.items():
        assert by_id[study_id]["report"] == example["report"]
        assert by_id[study_id]["patient_id"] == example["patient_id"]
        assert Path(by_id[study_id]["image"]).read_bytes() == Path(example["image"][0]).read_bytes()
    assert all(isinstance(e["image"], str) for e in by_id.values())


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


def test_openi_xml_without_findings_or_impression(copy: Path):
    path = _xml(copy, 4)
    text = path.read_text(encoding="utf-8")
    for label in ("FINDINGS", "IMPRESSION"):
        start = text.index(f'<AbstractText Label="{label}"')
        end = text.index("\n", start)
        text = text[:start] + f'<AbstractText Label="{label}" />' + text[end:]
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as info:
        IU_XRAY.read(copy, variant="random_721", options={"format": "openi"})
    err = info.value
    assert err.file == str(path) and err.record == "report 4" and "FINDINGS" in err.field and "IMPRESSION" in err.field
    assert "no FINDINGS or IMPRESSION text" in str(err)
    result = IU_XRAY.read(copy, variant="random_721", skip_invalid=True, options={"format": "openi"})
    assert len(result.skipped) == 1 and sum(result.counts().values()) == NUM - 1


def test_openi_xml_errors(copy: Path):
    path = _xml(copy, 7)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"<AbstractText Label=\"COMPARISON\">None.", b"<AbstractText Label=\"COMPARISON\">Non\xe9.", 1))
    with pytest.raises(DataError) as info:
        IU_XRAY.read(copy, variant="random_721", options={"format": "openi"})
    assert info.value.file == str(path) and info.value.record.startswith("line ") and "not valid UTF-8" in str(info.value)
    text = data.decode()
    start = text.index("<parentImage")
    path.write_text(text[:start] + "</eCitation>\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        IU_XRAY.read(copy, variant="random_721", options={"format": "openi"})
    assert info.value.file == str(path) and info.value.field == "parentImage"
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
