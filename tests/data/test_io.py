"""medcap.data.io: every failure names the file, the line or record, and the field."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from medcap.data import io as dio
from medcap.data.base import DataError


def test_read_csv_reads_plain_and_gzip(tmp_path: Path):
    text = "subject_id,study_id,split\n1,10,train\n2,20,validate\n"
    (tmp_path / "a.csv").write_text(text, encoding="utf-8")
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(text.encode()))
    for name in ("a.csv", "a.csv.gz"):
        frame = dio.read_csv(tmp_path / name, ("subject_id", "split"), dtype=str)
        assert frame["split"].tolist() == ["train", "validate"]
        assert frame["subject_id"].tolist() == ["1", "2"]


def test_read_csv_missing_column_names_file_and_column(tmp_path: Path):
    path = tmp_path / "mimic-cxr-2.0.0-metadata.csv"
    path.write_text("dicom_id,subject_id,StudyDate\nx,1,21800506\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        dio.read_csv(path, ("dicom_id", "subject_id", "StudyTime"))
    err = info.value
    assert err.file == str(path)
    assert err.field == "StudyTime"
    assert "missing required column StudyTime" in str(err)
    assert "found: dicom_id, subject_id, StudyDate" in str(err)


def test_read_csv_non_utf8_names_line(tmp_path: Path):
    path = tmp_path / "triage.csv"
    path.write_bytes(b"stay_id,chiefcomplaint\n1,cough\n2,chest pain \xff\xfe\n")
    with pytest.raises(DataError) as info:
        dio.read_csv(path, ("stay_id",))
    assert info.value.record == "line 3"
    assert "not valid UTF-8" in str(info.value) and "ff" in str(info.value)


def test_read_csv_missing_file_and_empty_file(tmp_path: Path):
    with pytest.raises(DataError, match="file not found"):
        dio.read_csv(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty CSV"):
        dio.read_csv(tmp_path / "empty.csv")


def test_iter_jsonl_yields_records_and_errors_with_line_numbers(tmp_path: Path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": 2\n[1, 2]\n{"a": "\xc3\x28"}\n{"a": 5}\n')
    items = list(dio.iter_jsonl(path))
    assert [line for line, _ in items] == [1, 3, 4, 5, 6]
    assert items[0][1] == {"a": 1} and items[4][1] == {"a": 5}
    malformed, not_object, bad_utf8 = (items[i][1] for i in (1, 2, 3))
    assert isinstance(malformed, DataError) and malformed.record == "line 3" and "malformed JSON" in str(malformed)
    assert isinstance(not_object, DataError) and "expected a JSON object, got list" in str(not_object)
    assert isinstance(bad_utf8, DataError) and bad_utf8.record == "line 5" and "not valid UTF-8" in str(bad_utf8)


def test_read_json_syntax_error_names_line(tmp_path: Path):
    path = tmp_path / "annotation.json"
    path.write_text('{\n "train": [\n  {"id": 1,}\n ]\n}\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        dio.read_json(path)
    assert info.value.record == "line 3" and info.value.file == str(path)


def test_parse_xml_errors_name_line(tmp_path: Path):
    path = tmp_path / "1.xml"
    path.write_text("<a>\n<b>\n</a>\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        dio.parse_xml(path)
    assert info.value.record == "line 3" and "malformed XML" in str(info.value)
    path.write_bytes(b"<a>\n<b>caf\xe9</b>\n</a>\n")
    with pytest.raises(DataError) as info:
        dio.parse_xml(path)
    assert info.value.record == "line 2" and "not valid UTF-8" in str(info.value)


def test_group_split_is_group_disjoint_seeded_and_close_to_fractions():
    rng = np.random.default_rng(0)
    groups = [f"p{int(g)}" for g in rng.integers(0, 400, 1500)]
    fractions = {"train": 0.7, "val": 0.2, "test": 0.1}
    splits = dio.group_split(groups, fractions, seed=3)
    by_group: dict[str, set[str]] = {}
    for group, split in zip(groups, splits):
        by_group.setdefault(group, set()).add(split)
    assert all(len(s) == 1 for s in by_group.values())
    largest_group = max(groups.count(g) for g in set(groups))
    for name, fraction in fractions.items():
        assert abs(splits.count(name) - fraction * len(groups)) <= largest_group
    assert dio.group_split(groups, fractions, seed=3) == splits
    assert dio.group_split(groups, fractions, seed=4) != splits
    # The assignment depends on the set of groups, not the input order.
    order = rng.permutation(len(groups))
    shuffled = dio.group_split([groups[i] for i in order], fractions, seed=3)
    assert shuffled == [splits[i] for i in order]
