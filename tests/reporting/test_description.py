"""Paper 003's structured description: graded certainty, decisions, locations, the JSON and text forms."""

from __future__ import annotations

import pytest

from medcap.reporting.description import CertaintyBands, StudyDescription, describe, location_of


def test_chatcad_bands_by_default():
    bands = CertaintyBands()
    assert [bands.word(p) for p in (0.0, 0.19, 0.2, 0.49, 0.5, 0.89, 0.9, 1.0)] == [
        "no sign of",
        "no sign of",
        "small possibility of",
        "small possibility of",
        "likely",
        "likely",
        "definite",
        "definite",
    ]
    custom = CertaintyBands((0.5,), ("unlikely", "probable"))
    assert custom.word(0.4) == "unlikely" and custom.word(0.5) == "probable"
    with pytest.raises(ValueError, match="2 edges need 3 words"):
        CertaintyBands((0.3, 0.6), ("a", "b"))
    with pytest.raises(ValueError, match="increase strictly"):
        CertaintyBands((0.6, 0.3), ("a", "b", "c"))


def test_locations_read_the_film_as_facing_the_patient():
    # The image's left half is the patient's right.
    assert location_of(0.1, 0.9) == "right lower zone"
    assert location_of(0.9, 0.1) == "left upper zone"
    assert location_of(0.5, 0.5) == "central middle zone"
    with pytest.raises(ValueError, match="not inside the image"):
        location_of(1.2, 0.5)


def test_states_follow_threshold_and_the_uncertain_band():
    description = describe(
        "s1",
        {"Cardiomegaly": 0.95, "Edema": 0.35, "Pneumothorax": 0.2},
        {"Cardiomegaly": 0.4, "Edema": 0.3, "Pneumothorax": 0.25},
        peaks={"Cardiomegaly": (0.7, 0.6), "Edema": (0.2, 0.5), "Pneumothorax": (0.1, 0.1)},
        uncertain_below=0.5,
    )
    by_name = {f.name: f for f in description.findings}
    assert by_name["Cardiomegaly"].state == "present" and by_name["Cardiomegaly"].certainty == "definite"
    assert by_name["Cardiomegaly"].location == "left middle zone"
    # Decided (0.35 >= 0.3) but below one half: stated as uncertain.
    assert by_name["Edema"].state == "uncertain" and by_name["Edema"].certainty == "small possibility of"
    # Not decided: no location even though a peak was given.
    assert by_name["Pneumothorax"].state == "absent" and by_name["Pneumothorax"].location is None
    text = description.to_text().splitlines()
    assert text[1] == "- Cardiomegaly: definite (p=0.95, threshold 0.40) -> present; map peak: left middle zone"
    assert text[2].startswith("- Edema: small possibility of (p=0.35") and text[3].endswith("-> absent")
    assert StudyDescription.from_dict(description.to_dict()) == description


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="name different findings: \\['Edema'\\]"):
        describe("s2", {"Cardiomegaly": 0.5, "Edema": 0.1}, {"Cardiomegaly": 0.5})
    with pytest.raises(ValueError, match="probability 1.5 is not in"):
        describe("s3", {"Edema": 1.5}, {"Edema": 0.5})
    with pytest.raises(ValueError, match="not a structured description"):
        StudyDescription.from_dict({"study_id": "x"})
