"""Learnable synthetic chest radiographs and reports, the shared drawing API.

Every synthetic tree (`medcap data synth {medicat,iu_xray,mimic}`) is built
from the functions here, so one finding vocabulary, one image model and one
report model serve all three datasets. The dataset modules only lay the
results out in their real on-disk formats. One idea, though long: the image
model and the report model must agree finding by finding (what is drawn is
what the report says and what `synthetic_truth.json` records), so it holds
that one generative model and nothing else.

Stable API (other modules import these; keep signatures):

    FINDINGS: tuple[str, ...]
        The findings an image can carry, CheXpert observation names:
        Atelectasis, Cardiomegaly, Consolidation, Edema, Pleural Effusion
        (the 5 labels of paper 001), then Lung Lesion (drawn as a nodule;
        CheXpert's name for nodules and masses) and Pneumothorax.
    sample_findings(rng) -> dict[str, bool]
        One study's ground truth (prevalences below).
    draw_radiograph(findings, rng, size=256, view="frontal") -> np.ndarray
        uint8 (size, size) image whose content carries the findings.
    write_report(findings, rng, style) -> str
        Text paraphrased from the findings; `style` is one of REPORT_STYLES:
        "caption"    MediCat-like figure caption body (no figure label),
                     at most 20 words after `medcap.text.clean_caption`;
        "findings"   FINDINGS-section prose (what R2Gen's IU annotation holds);
        "impression" a one- or two-sentence IMPRESSION;
        "report"     "FINDINGS: ...\\n\\nIMPRESSION: ..." as in MIMIC-CXR's
                     free-text reports.
    write_report_sections(findings, rng, variety="listed") -> tuple[str, str]
        (findings prose, impression) drawn together, for formats that store
        the sections separately (OpenI XML); `variety` is one of
        REPORT_VARIETIES (below).
    encode_png(image) -> bytes
        Deterministic PNG bytes (same array, same bytes).
    write_truth(path, truth, *, dataset, seed, boxes=None) / load_truth(path_or_dir)
        The ground-truth sidecar `synthetic_truth.json`:
        {"format": "medcap.synthetic_truth/1", "dataset": ..., "seed": ...,
         "findings_names": [...FINDINGS], "records": {id: {finding: bool}},
         and optionally "boxes": {id: [{"finding", "x", "y", "w", "h"}]}}.
    load_truth_boxes(path_or_dir)
        Those boxes (pixels of the stored image; `draw_radiograph(boxes=[])`).
    tree_dir(data_config) / truth_for(data_config)
        Where a config's synthetic tree lives, and its ground truth (None for
        real data).

Finding prevalences (ours; the papers give none). `sample_findings` makes a
study normal with probability NORMAL_FRACTION = 0.4; an abnormal study draws
each finding independently with CONDITIONAL_PREVALENCE, then adds
Cardiomegaly to half of the Edema studies without it (heart failure links
them), and, if nothing was drawn, takes one finding in proportion to
CONDITIONAL_PREVALENCE. Marginal prevalences, measured on 200,000 draws:

    Atelectasis 0.22  Cardiomegaly 0.27  Consolidation 0.22  Edema 0.16
    Pleural Effusion 0.22  Lung Lesion 0.16  Pneumothorax 0.13  normal 0.40

How each finding is drawn (all positions and sizes jittered per image):

    Cardiomegaly      heart silhouette widened to a cardiothoracic ratio of
                      about 0.6 (normal about 0.42);
    Pleural Effusion  dense basal fluid with a meniscus rising laterally,
                      blunting the costophrenic angle, one or both sides;
    Lung Lesion       one or two round, sharp-edged nodules inside a lung;
    Pneumothorax      an apical-lateral lucent rim with no lung markings,
                      bounded by a thin bright visceral pleural line;
    Consolidation     a dense lobular patch with dark air bronchograms;
    Edema             bilateral perihilar haze ("bat wing") and short
                      peripheral Kerley B lines;
    Atelectasis       a plate-like band in a lower zone and an elevated
                      hemidiaphragm on that side.

`view="lateral"` draws a simpler lateral film (one lung field, heart
anterior, spine posterior) carrying the same findings; IU X-ray trees use it
as the second view.

Reports (ours): the "findings" prose states every finding, the present ones
in one of several positive phrasings and the absent ones negated, singly
("No pneumothorax.") or grouped ("No a, b or c."), in a drawn order after the
heart sentence, sometimes with a neutral filler sentence. Impressions and
captions name the present findings only. No text states a side: the truth is
per finding, not per side. MIMIC_FINDINGS are the first five FINDINGS.

Report varieties of the findings prose (`REPORT_VARIETIES`, ours):

* `listed` (every tree's default): as above, every finding stated. Every
  report then shares most sentences with every other, so a constant normal
  report scores BLEU close to any system's, and text metrics barely
  separate systems.
* `realistic` (IU X-ray and MIMIC trees with `data.synthetic_reports=realistic`;
  the comparison experiments use it): shaped like real IU X-ray FINDINGS. A normal
  study gets one of a few whole templates (`_NORMAL_TEMPLATES`, drawn with
  unequal weights, as one radiologist's template dominates a real
  department's); an abnormal study gets its heart sentence, a sentence per
  present finding, one or two pertinent negatives drawn from the absent
  findings, and sometimes a filler. Every finding is still stated where
  present and never contradicted, so the ground truth is unchanged.

Everything is vectorised numpy over a coordinate grid (no per-pixel Python
loops) and drawn only from the `rng` passed in, so a seed gives the same
pixels and the same text; `bench/synthetic_speed.py` measures images/s.
"""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from medcap.text import clean_caption

FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
    "Lung Lesion",
    "Pneumothorax",
)
#: The five labels of paper 001 (seed 001), a prefix of FINDINGS.
MIMIC_FINDINGS: tuple[str, ...] = FINDINGS[:5]

NORMAL_FRACTION = 0.4
CONDITIONAL_PREVALENCE: dict[str, float] = {
    "Atelectasis": 0.35,
    "Cardiomegaly": 0.35,
    "Consolidation": 0.35,
    "Edema": 0.25,
    "Pleural Effusion": 0.35,
    "Lung Lesion": 0.25,
    "Pneumothorax": 0.2,
}
REPORT_STYLES = ("caption", "findings", "impression", "report")
REPORT_VARIETIES = ("listed", "realistic")
VIEWS = ("frontal", "lateral")
TRUTH_FILE = "synthetic_truth.json"
TRUTH_FORMAT = "medcap.synthetic_truth/1"


# ---------------------------------------------------------------------------
# Ground truth


def sample_findings(rng: np.random.Generator) -> dict[str, bool]:
    """Draws one study's findings (see the module docstring for prevalences)."""
    normal = rng.random() < NORMAL_FRACTION
    draws = rng.random(len(FINDINGS))
    heart_failure = rng.random() < 0.5
    fallback = rng.choice(len(FINDINGS), p=_fallback_weights())
    if normal:
        return {name: False for name in FINDINGS}
    present = {name: bool(draws[i] < CONDITIONAL_PREVALENCE[name]) for i, name in enumerate(FINDINGS)}
    if present["Edema"] and heart_failure:
        present["Cardiomegaly"] = True
    if not any(present.values()):
        present[FINDINGS[fallback]] = True
    return present


def _fallback_weights() -> np.ndarray:
    weights = np.array([CONDITIONAL_PREVALENCE[name] for name in FINDINGS])
    return weights / weights.sum()


def _check_findings(findings: dict[str, bool]) -> dict[str, bool]:
    unknown = sorted(set(findings) - set(FINDINGS))
    if unknown:
        raise ValueError(f"unknown findings {unknown}; valid: {', '.join(FINDINGS)}")
    return {name: bool(findings.get(name, False)) for name in FINDINGS}


# ---------------------------------------------------------------------------
# Images


class _Canvas:
    """A normalised coordinate grid: y, x in [0, 1], y growing downwards."""

    def __init__(self, size: int):
        self.size = size
        axis = (np.arange(size, dtype=np.float32) + 0.5) / size
        self.y = axis[:, None]
        self.x = axis[None, :]

    def ellipse(self, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
        """Normalised squared radius: < 1 inside the ellipse."""
        return ((self.y - cy) / ry) ** 2 + ((self.x - cx) / rx) ** 2

    def soft(self, signed: np.ndarray, width_px: float = 1.5) -> np.ndarray:
        """A 0..1 mask from a signed 'inside > 0' field in image units, with a
        linear edge `width_px` pixels wide (anti-aliasing, cheaper than a sigmoid)."""
        return np.clip(signed * (self.size / width_px) + 0.5, 0.0, 1.0)

    def ridge(self, field: np.ndarray, width: float) -> np.ndarray:
        """1 on the zero set of `field`, falling linearly to 0 at |field| = width."""
        return np.clip(1.0 - np.abs(field) * (1.0 / width), 0.0, None)

    def noise(self, rng: np.random.Generator, cells: int) -> np.ndarray:
        """Smooth value noise, N(0, 1) on a `cells` x `cells` lattice,
        bilinearly interpolated. Separable gathers, not a matrix product:
        BLAS threads on such small products cost more than they save."""
        coarse = rng.standard_normal((cells + 1, cells + 1), dtype=np.float32)
        left, frac = _lattice(self.size, cells)
        rows = coarse[left] * (1.0 - frac)[:, None] + coarse[left + 1] * frac[:, None]
        return rows[:, left] * (1.0 - frac)[None, :] + rows[:, left + 1] * frac[None, :]


@functools.lru_cache(maxsize=32)
def _lattice(size: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Left lattice node and interpolation weight of each pixel centre."""
    position = (np.arange(size) + 0.5) / size * cells
    left = np.minimum(position.astype(int), cells - 1)
    return left, (position - left).astype(np.float32)


def draw_radiograph(
    findings: dict[str, bool],
    rng: np.random.Generator,
    size: int = 256,
    view: str = "frontal",
    boxes: list[dict[str, Any]] | None = None,
) -> np.ndarray:
    """Draws a chest-radiograph-like uint8 (size, size) image carrying `findings`.

    `boxes`, when given a list, receives one `{"finding", "x", "y", "w", "h"}`
    per drawn lesion of a frontal view, in pixels (top-left corner, width,
    height, as NIH's BBox_List_2017.csv): the bounding box of the pixels
    where that lesion's own drawing weight exceeds one half. Collecting them
    draws nothing from `rng`, so the pixels are the same either way."""
    present = _check_findings(findings)
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; valid: {', '.join(VIEWS)}")
    if size < 32:
        raise ValueError(f"size={size}: need at least 32 pixels")
    canvas = _Canvas(size)
    if view == "frontal":
        image = _draw_frontal(canvas, present, rng, boxes)
    else:
        image = _draw_lateral(canvas, present, rng)
    # Acquisition: exposure and contrast vary, the detector blurs and adds noise.
    gain = rng.uniform(0.9, 1.1)
    offset = rng.uniform(-0.04, 0.04)
    image = ndimage.gaussian_filter(image, sigma=0.6 * size / 256)
    image = image * gain + offset + 0.018 * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image * 255.0, 0, 255).astype(np.uint8)


def _box(boxes: list[dict[str, Any]] | None, finding: str, weight: np.ndarray) -> None:
    """Appends the pixel bounding box of `weight > 0.5` (see `draw_radiograph`)."""
    if boxes is None:
        return
    inside = np.asarray(weight) > 0.5
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return
    boxes.append(
        {
            "finding": finding,
            "x": int(cols[0]),
            "y": int(rows[0]),
            "w": int(cols[-1] - cols[0] + 1),
            "h": int(rows[-1] - rows[0] + 1),
        }
    )


def _draw_frontal(
    c: _Canvas, present: dict[str, bool], rng: np.random.Generator, boxes: list[dict[str, Any]] | None = None
) -> np.ndarray:
    y, x = c.y, c.x
    cx = 0.5 + rng.normal(0, 0.012)
    # Body: soft tissue on air, the abdomen below the diaphragm, the spine.
    body = c.soft(1.0 - np.sqrt(c.ellipse(0.58, cx, 0.66, 0.43)), 4.0)
    image = 0.06 + 0.36 * body + 0.1 * c.soft(0.025 - np.abs(x - cx), 2.0) * body

    # Lungs: ellipses cut by diaphragm domes. Side 0 is the image-left lung
    # (the patient's right), side 1 the image-right lung.
    lung_rx = 0.135 + rng.normal(0, 0.006)
    lung_ry = 0.30 + rng.normal(0, 0.01)
    lung_cy = 0.45 + rng.normal(0, 0.01)
    offsets = (-0.175, 0.175)
    elevated = int(rng.integers(2)) if present["Atelectasis"] else -1
    diaphragm_tops, domes, lung_fields, lungs = [], [], [], []
    for side, dx in enumerate(offsets):
        lcx = cx + dx
        # The left hemidiaphragm (side 1) sits lower; atelectasis raises one.
        top = lung_cy + 0.19 + 0.02 * side + rng.normal(0, 0.008) - (0.05 if side == elevated else 0.0)
        dome = top + 0.08 * ((x - lcx) / lung_rx) ** 2
        field = c.soft(1.0 - np.sqrt(c.ellipse(lung_cy, lcx, lung_ry, lung_rx)), 1.5)
        lung_fields.append(field)
        domes.append(dome)
        lungs.append(field * c.soft(dome - y, 1.5))
        diaphragm_tops.append(top)
    lung = np.maximum(lungs[0], lungs[1])

    # Lung markings: vessel-like ridges of smooth noise, denser near the hila.
    ridge = c.ridge(c.noise(rng, 10), 0.15) + 0.6 * c.ridge(c.noise(rng, 20), 0.12)
    # Separable Gaussians: an outer product of two 1-D profiles.
    hilar = np.exp(-(((np.abs(x - cx) - 0.1) / 0.2) ** 2)) * np.exp(-(((y - 0.45) / 0.3) ** 2))
    markings = ridge * (0.035 + 0.07 * hilar)

    # Pneumothorax: the lung collapses away from the apex and lateral wall,
    # leaving a lucent rim without markings behind a visceral pleural line.
    ptx_region = 0.0
    pleural_line = 0.0
    if present["Pneumothorax"]:
        side = int(rng.integers(2))
        scale = rng.uniform(0.62, 0.75)
        towards_midline = -np.sign(offsets[side])
        radius = np.sqrt(
            c.ellipse(
                lung_cy + (1 - scale) * lung_ry * 1.1,
                cx + offsets[side] + towards_midline * (1 - scale) * lung_rx * 0.8,
                scale * lung_ry,
                scale * lung_rx,
            )
        )
        ptx_region = lungs[side] * c.soft(radius - 1.0, 1.5)
        _box(boxes, "Pneumothorax", ptx_region)
        pleural_line = lungs[side] * c.ridge((radius - 1.0) * scale * lung_rx, 1.5 / c.size)

    parenchyma = 0.13 + markings * (1.0 - ptx_region) - 0.06 * ptx_region + 0.22 * pleural_line
    image = image * (1.0 - lung) + parenchyma * lung

    # Posterior ribs (arcs curving down laterally) and clavicles over the thorax.
    thorax = c.soft(0.34 - np.abs(x - cx), 3.0) * c.soft(lung_cy + 0.26 - y, 3.0) * c.soft(y - 0.12, 2.0)
    rib_phase = (y - 0.2 * ((x - cx) / 0.35) ** 2) * rng.uniform(12.0, 14.0) + rng.uniform(0, 1)
    ribs = np.clip(np.sin(2 * np.pi * rib_phase), 0, None) ** 4
    image = image + 0.07 * ribs * thorax
    clavicle_y = lung_cy - lung_ry + 0.02
    for dx in offsets:
        t = (x - cx - np.sign(dx) * 0.03) * np.sign(dx)  # 0 at the midline, growing laterally
        bone = c.ridge(y - (clavicle_y - 0.08 * t), 0.012) * c.soft(t, 2.0) * c.soft(0.24 - t, 2.0)
        image = image + 0.12 * bone

    # Heart: a normal cardiothoracic ratio is about 0.42, cardiomegaly about 0.6.
    thorax_width = 2 * (0.175 + lung_rx)
    ratio = rng.uniform(0.56, 0.66) if present["Cardiomegaly"] else rng.uniform(0.38, 0.46)
    heart_rx = ratio * thorax_width / 2
    heart_cx = cx + 0.3 * heart_rx
    heart_ry = 0.1 + 0.25 * heart_rx
    heart_cy = diaphragm_tops[1] - heart_ry * 0.55
    heart = c.soft(1.0 - np.sqrt(c.ellipse(heart_cy, heart_cx, heart_ry, heart_rx)), 2.5)
    heart = heart * c.soft(diaphragm_tops[1] + 0.03 - y, 2.0)
    image = image * (1.0 - heart) + 0.46 * heart
    if present["Cardiomegaly"]:
        _box(boxes, "Cardiomegaly", heart)

    # Edema: bilateral perihilar haze and Kerley B lines at the bases.
    if present["Edema"]:
        haze = np.exp(-(((np.abs(x - cx) - 0.12) / 0.11) ** 2)) * np.exp(-(((y - lung_cy) / 0.16) ** 2))
        image = image + 0.2 * haze * lung * (1.0 + 0.3 * c.noise(rng, 8))
        _box(boxes, "Edema", haze * lung)
        for side, dx in enumerate(offsets):
            lateral = cx + dx + np.sign(dx) * lung_rx * 0.8
            for row in diaphragm_tops[side] - rng.uniform(0.03, 0.14, size=4):
                line = c.ridge(y - row, 0.005) * c.soft(0.035 - np.abs(x - lateral), 1.0)
                image = image + 0.15 * line * lung

    # Consolidation: a dense lobular patch with dark air bronchograms.
    if present["Consolidation"]:
        side = int(rng.integers(2))
        pcx = cx + offsets[side] + np.sign(offsets[side]) * rng.uniform(-0.02, 0.05)
        pcy = lung_cy + rng.uniform(-0.08, 0.1)
        radius = rng.uniform(0.08, 0.11)
        patch = c.soft(radius * (1.0 + 0.3 * c.noise(rng, 12)) - np.sqrt((y - pcy) ** 2 + (x - pcx) ** 2), 4.0)
        bronchi = c.ridge(c.noise(rng, 16), 0.12)
        image = image + (0.28 - 0.12 * bronchi) * patch * lungs[side]
        _box(boxes, "Consolidation", patch * lungs[side])

    # Atelectasis: a plate-like band above the elevated hemidiaphragm.
    if present["Atelectasis"]:
        side = elevated
        bcx = cx + offsets[side] + np.sign(offsets[side]) * rng.uniform(0.0, 0.04)
        bcy = diaphragm_tops[side] - rng.uniform(0.06, 0.1)
        angle = rng.uniform(-0.35, 0.35)
        along = (x - bcx) * np.cos(angle) + (y - bcy) * np.sin(angle)
        across = (y - bcy) * np.cos(angle) - (x - bcx) * np.sin(angle)
        band = c.soft(rng.uniform(0.011, 0.018) - np.abs(across), 1.2) * c.soft(rng.uniform(0.07, 0.1) - np.abs(along), 2.0)
        image = image + 0.3 * band * lungs[side]
        _box(boxes, "Atelectasis", band * lungs[side])

    # Lung lesion: one or two round, sharp nodules inside a lung.
    if present["Lung Lesion"]:
        for _ in range(int(rng.integers(1, 3))):
            side = int(rng.integers(2))
            ncx = cx + offsets[side] + np.sign(offsets[side]) * rng.uniform(-0.01, 0.07)
            ncy = lung_cy + rng.uniform(-0.2, 0.06)
            radius = rng.uniform(0.025, 0.04)
            nodule = c.soft(radius - np.sqrt((y - ncy) ** 2 + (x - ncx) ** 2), 1.2)
            image = image + 0.34 * nodule
            _box(boxes, "Lung Lesion", nodule)

    # Pleural effusion: dense basal fluid whose meniscus rises laterally; it
    # hides the hemidiaphragm and blunts the costophrenic angle.
    if present["Pleural Effusion"]:
        sides = (0, 1) if rng.random() < 0.35 else (int(rng.integers(2)),)
        for side in sides:
            lcx = cx + offsets[side]
            level = diaphragm_tops[side] - rng.uniform(0.05, 0.11)
            lateral = np.clip(np.sign(offsets[side]) * (x - lcx) / lung_rx, -1.0, 1.0)
            meniscus = level - 0.06 * (lateral + 1.0) ** 2
            fluid = lung_fields[side] * c.soft(y - meniscus, 3.0) * c.soft(domes[side] + 0.03 - y, 3.0)
            image = image * (1.0 - fluid) + 0.44 * fluid
            _box(boxes, "Pleural Effusion", fluid)

    return image.astype(np.float32, copy=False)


def _draw_lateral(c: _Canvas, present: dict[str, bool], rng: np.random.Generator) -> np.ndarray:
    """A simpler lateral view: one lung field, heart anterior, spine posterior."""
    y, x = c.y, c.x
    cx = 0.5 + rng.normal(0, 0.012)
    body = c.soft(1.0 - np.sqrt(c.ellipse(0.55, cx, 0.6, 0.42)), 4.0)
    image = 0.06 + 0.36 * body
    lung_cy = 0.45 + rng.normal(0, 0.01)
    lung = c.soft(1.0 - np.sqrt(c.ellipse(lung_cy, cx, 0.3, 0.28)), 1.5) * c.soft(lung_cy + 0.22 - 0.1 * (x - cx) - y, 1.5)
    parenchyma = 0.14 + 0.05 * c.ridge(c.noise(rng, 10), 0.15)
    if present["Pneumothorax"]:
        apex = c.soft(lung_cy - 0.17 - y, 3.0)
        parenchyma = parenchyma * (1.0 - apex) + 0.08 * apex
    image = image * (1.0 - lung) + parenchyma * lung
    spine = c.soft(0.04 - np.abs(x - (cx + 0.3)), 2.0) * body
    image = image + 0.16 * spine * (0.7 + 0.3 * np.clip(np.sin(2 * np.pi * y * 14), 0, None))
    heart_rx = 0.17 if present["Cardiomegaly"] else 0.12
    heart = c.soft(1.0 - np.sqrt(c.ellipse(lung_cy + 0.15, cx - 0.12, 0.14, heart_rx)), 2.5) * lung
    image = image * (1.0 - heart) + 0.46 * heart
    if present["Edema"]:
        image = image + 0.12 * (np.exp(-(((x - cx) / 0.15) ** 2)) * np.exp(-(((y - lung_cy) / 0.15) ** 2))) * lung
    if present["Consolidation"]:
        pcy, pcx = lung_cy + rng.uniform(0.0, 0.12), cx + rng.uniform(-0.1, 0.1)
        patch = c.soft(0.1 * (1.0 + 0.3 * c.noise(rng, 12)) - np.sqrt((y - pcy) ** 2 + (x - pcx) ** 2), 4.0)
        image = image + 0.25 * patch * lung
    if present["Atelectasis"]:
        band = c.soft(0.012 - np.abs(y - (lung_cy + 0.12) - 0.2 * (x - cx)), 1.2) * c.soft(0.1 - np.abs(x - cx), 2.0)
        image = image + 0.25 * band * lung
    if present["Lung Lesion"]:
        ncy, ncx = lung_cy + rng.uniform(-0.15, 0.05), cx + rng.uniform(-0.12, 0.12)
        image = image + 0.3 * c.soft(0.03 - np.sqrt((y - ncy) ** 2 + (x - ncx) ** 2), 1.2)
    if present["Pleural Effusion"]:
        # Fluid pools in the posterior costophrenic sulcus.
        fluid = c.soft(y - (lung_cy + 0.14 - 0.12 * (x - cx) / 0.28), 3.0) * lung
        image = image * (1.0 - fluid) + 0.5 * fluid
    return image.astype(np.float32, copy=False)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (H, W) or (H, W, 3) array; same array, same bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# Reports

# Each finding: (positive phrasings, negative phrasings, impression phrasings,
# short caption nouns). Negatives are written so that a negation-aware labeler
# (CheXpert/NegBio style) reads them as negative.
_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "Cardiomegaly": {
        "pos": (
            "The heart is enlarged.",
            "The cardiac silhouette is enlarged.",
            "There is cardiomegaly.",
            "Moderate enlargement of the cardiac silhouette is noted.",
            "Heart size is increased.",
        ),
        "neg": (
            "Heart size is normal.",
            "The cardiac silhouette is within normal limits.",
            "No cardiomegaly.",
            "The heart is not enlarged.",
            "Normal heart size.",
        ),
        "imp": ("Cardiomegaly.", "Enlarged cardiac silhouette.", "Stable cardiomegaly."),
        "noun": ("cardiomegaly", "an enlarged heart", "enlarged cardiac silhouette"),
        "neg_noun": ("cardiomegaly",),
    },
    "Pleural Effusion": {
        "pos": (
            "There is a pleural effusion with blunting of the costophrenic angle.",
            "A pleural effusion is present.",
            "Blunting of the costophrenic angle consistent with pleural effusion.",
            "Layering pleural fluid is seen at the lung base.",
        ),
        "neg": (
            "No pleural effusion.",
            "There is no pleural effusion.",
            "The costophrenic angles are sharp without effusion.",
        ),
        "imp": ("Pleural effusion.", "Pleural effusion at the base."),
        "noun": ("pleural effusion", "a pleural effusion", "basal pleural fluid"),
        "neg_noun": ("pleural effusion", "effusion"),
    },
    "Lung Lesion": {
        "pos": (
            "There is a rounded pulmonary nodule.",
            "A well-circumscribed nodule is seen in the lung.",
            "A pulmonary nodule is present.",
            "A round opacity suspicious for a nodule is noted.",
        ),
        "neg": (
            "No pulmonary nodules are seen.",
            "There is no suspicious pulmonary nodule or mass.",
            "No nodule or mass.",
        ),
        "imp": ("Pulmonary nodule.", "Pulmonary nodule, recommend CT follow-up."),
        "noun": ("a pulmonary nodule", "a lung nodule", "a nodule"),
        "neg_noun": ("nodule", "mass"),
    },
    "Pneumothorax": {
        "pos": (
            "There is an apical pneumothorax.",
            "A pneumothorax is present at the apex with a visible pleural line.",
            "A small apical pneumothorax is seen.",
        ),
        "neg": ("No pneumothorax.", "There is no pneumothorax.", "No pneumothorax is seen."),
        "imp": ("Apical pneumothorax.", "Pneumothorax."),
        "noun": ("a pneumothorax", "an apical pneumothorax"),
        "neg_noun": ("pneumothorax",),
    },
    "Consolidation": {
        "pos": (
            "There is a focal consolidation with air bronchograms.",
            "A patchy airspace consolidation is present.",
            "Focal airspace consolidation is noted.",
        ),
        "neg": (
            "No focal consolidation.",
            "There is no focal airspace consolidation.",
            "No consolidation is identified.",
        ),
        "imp": ("Focal consolidation, possibly pneumonia.", "Airspace consolidation."),
        "noun": ("consolidation", "a focal consolidation", "airspace consolidation"),
        "neg_noun": ("focal consolidation", "consolidation"),
    },
    "Edema": {
        "pos": (
            "There is perihilar haziness consistent with pulmonary edema.",
            "Pulmonary edema is present with Kerley B lines.",
            "Interstitial edema is seen bilaterally.",
        ),
        "neg": (
            "No pulmonary edema.",
            "There is no pulmonary edema.",
            "No evidence of pulmonary edema.",
        ),
        "imp": ("Pulmonary edema.", "Mild pulmonary edema."),
        "noun": ("pulmonary edema", "edema", "perihilar edema"),
        "neg_noun": ("pulmonary edema", "edema"),
    },
    "Atelectasis": {
        "pos": (
            "There is plate-like atelectasis at the lung base.",
            "Linear atelectasis is seen in the lower zone.",
            "Basilar atelectasis with elevation of the hemidiaphragm.",
        ),
        "neg": ("No atelectasis.", "There is no atelectasis."),
        "imp": ("Basilar atelectasis.", "Plate-like atelectasis."),
        "noun": ("atelectasis", "plate-like atelectasis", "basilar atelectasis"),
        "neg_noun": ("atelectasis",),
    },
}
_REPORT_ORDER = ("Cardiomegaly", "Edema", "Consolidation", "Lung Lesion", "Atelectasis", "Pleural Effusion", "Pneumothorax")
_FILLERS = (
    "The osseous structures are intact.",
    "No acute bony abnormality.",
    "Degenerative changes of the thoracic spine.",
    "The mediastinal contours are normal.",
    "The trachea is midline.",
)
_NORMAL_IMPRESSIONS = (
    "No acute cardiopulmonary abnormality.",
    "No acute cardiopulmonary process.",
    "Normal chest radiograph.",
    "No active disease.",
)
_CAPTION_OPENINGS = (
    "Chest radiograph showing",
    "Chest X-ray demonstrating",
    "Frontal chest radiograph with",
    "Posteroanterior chest X-ray shows",
)
_NORMAL_CAPTIONS = (
    "Normal chest radiograph.",
    "Chest X-ray without abnormality.",
    "Frontal chest radiograph showing clear lungs and normal heart size.",
    "Unremarkable chest X-ray.",
)
CAPTION_MAX_WORDS = 20
#: Whole normal FINDINGS texts of the `realistic` variety, with their weights.
_NORMAL_TEMPLATES: tuple[tuple[str, float], ...] = (
    ("The heart is normal in size. The mediastinum is unremarkable. The lungs are clear.", 0.4),
    ("The cardiomediastinal silhouette is within normal limits. The lungs are clear. No pneumothorax or pleural effusion.", 0.25),
    ("Heart size and pulmonary vascularity appear within normal limits. No focal consolidation, pleural effusion or pneumothorax. The osseous structures are intact.", 0.2),
    ("The heart size and mediastinal contours are normal. The lungs are well expanded and clear. No acute bony abnormality.", 0.15),
)


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _join_words(words: list[str]) -> str:
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def _findings_prose(present: dict[str, bool], rng: np.random.Generator) -> str:
    positives = [name for name in _REPORT_ORDER if present[name]]
    negatives = [name for name in _REPORT_ORDER if not present[name]]
    sentences = [_pick(rng, _PHRASES[name]["pos"]) for name in positives]
    # Negatives: either one sentence each, or grouped into "No a, b or c."
    if len(negatives) >= 3 and rng.random() < 0.5:
        grouped = [n for n in negatives if n != "Cardiomegaly"]
        rng.shuffle(grouped)
        split = int(rng.integers(2, len(grouped) + 1))
        nouns = [_pick(rng, _PHRASES[n]["neg_noun"]) for n in grouped[:split]]
        sentences.append("No " + ", ".join(nouns[:-1]) + " or " + nouns[-1] + ".")
        rest = [n for n in negatives if n not in grouped[:split]]
    else:
        rest = negatives
    sentences += [_pick(rng, _PHRASES[name]["neg"]) for name in rest]
    if rng.random() < 0.5:
        sentences.append(_pick(rng, _FILLERS))
    # Heart first as radiologists do, the rest in a drawn order.
    heart = [s for s in sentences if s in _PHRASES["Cardiomegaly"]["pos"] + _PHRASES["Cardiomegaly"]["neg"]]
    others = [s for s in sentences if s not in heart]
    order = rng.permutation(len(others))
    return " ".join(heart + [others[i] for i in order])


def _realistic_prose(present: dict[str, bool], rng: np.random.Generator) -> str:
    """FINDINGS prose of the `realistic` variety (module docstring)."""
    positives = [name for name in _REPORT_ORDER if present[name]]
    if not positives:
        weights = np.array([w for _, w in _NORMAL_TEMPLATES])
        return _NORMAL_TEMPLATES[int(rng.choice(len(weights), p=weights / weights.sum()))][0]
    heart = _pick(rng, _PHRASES["Cardiomegaly"]["pos" if present["Cardiomegaly"] else "neg"])
    others = [name for name in positives if name != "Cardiomegaly"]
    order = rng.permutation(len(others))
    sentences = [heart] + [_pick(rng, _PHRASES[others[i]]["pos"]) for i in order]
    absent = [name for name in _REPORT_ORDER if not present[name] and name != "Cardiomegaly"]
    if absent:
        chosen = rng.permutation(len(absent))[: int(rng.integers(1, min(2, len(absent)) + 1))]
        sentences += [_pick(rng, _PHRASES[absent[i]]["neg"]) for i in sorted(chosen)]
    if rng.random() < 0.3:
        sentences.append(_pick(rng, _FILLERS))
    return " ".join(sentences)


def _impression(present: dict[str, bool], rng: np.random.Generator) -> str:
    positives = [name for name in _REPORT_ORDER if present[name]]
    if not positives:
        return _pick(rng, _NORMAL_IMPRESSIONS)
    return " ".join(_pick(rng, _PHRASES[name]["imp"]) for name in positives)


def _caption(present: dict[str, bool], rng: np.random.Generator) -> str:
    positives = [name for name in _REPORT_ORDER if present[name]]
    if not positives:
        return _pick(rng, _NORMAL_CAPTIONS)
    nouns = [_pick(rng, _PHRASES[name]["noun"]) for name in positives]
    text = f"{_pick(rng, _CAPTION_OPENINGS)} {_join_words(nouns)}."
    # Counted as the captioner counts them: "X-ray" is two cleaned words.
    if len(clean_caption(text).split()) > CAPTION_MAX_WORDS:  # many findings: shortest nouns
        nouns = [min(_PHRASES[name]["noun"], key=lambda s: len(s.split())) for name in positives]
        text = f"Chest radiograph showing {_join_words(nouns)}."
    return text


def write_report_sections(findings: dict[str, bool], rng: np.random.Generator, variety: str = "listed") -> tuple[str, str]:
    """(FINDINGS prose, IMPRESSION) for one study, drawn together; `variety`
    is one of REPORT_VARIETIES (module docstring)."""
    present = _check_findings(findings)
    if variety not in REPORT_VARIETIES:
        raise ValueError(f"unknown report variety {variety!r}; valid: {', '.join(REPORT_VARIETIES)}")
    prose = _realistic_prose(present, rng) if variety == "realistic" else _findings_prose(present, rng)
    return prose, _impression(present, rng)


def write_report(findings: dict[str, bool], rng: np.random.Generator, style: str) -> str:
    """Text paraphrased from `findings` in one of REPORT_STYLES (module docstring)."""
    present = _check_findings(findings)
    if style == "caption":
        return _caption(present, rng)
    if style == "findings":
        return _findings_prose(present, rng)
    if style == "impression":
        return _impression(present, rng)
    if style == "report":
        prose, impression = write_report_sections(present, rng)
        return f"FINDINGS: {prose}\n\nIMPRESSION: {impression}"
    raise ValueError(f"unknown report style {style!r}; valid: {', '.join(REPORT_STYLES)}")


# ---------------------------------------------------------------------------
# Ground-truth sidecar


def write_truth(
    path: str | Path,
    truth: dict[str, dict[str, bool]],
    *,
    dataset: str,
    seed: int,
    boxes: dict[str, list[dict[str, Any]]] | None = None,
) -> Path:
    """Writes `synthetic_truth.json` (format in the module docstring); `boxes`
    ({id: [{"finding", "x", "y", "w", "h"}, ...]}, pixels, finding named as the
    dataset names it) adds where each lesion was drawn."""
    path = Path(path)
    if path.is_dir():
        path = path / TRUTH_FILE
    data: dict[str, Any] = {
        "format": TRUTH_FORMAT,
        "dataset": dataset,
        "seed": int(seed),
        "findings_names": list(FINDINGS),
        "records": {key: _check_findings(value) for key, value in truth.items()},
    }
    if boxes is not None:
        data["boxes"] = boxes
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return path


def load_truth(path_or_dir: str | Path) -> dict[str, dict[str, bool]]:
    """Reads a ground-truth sidecar (or the one inside a synthetic tree)."""
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / TRUTH_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != TRUTH_FORMAT:
        raise ValueError(f"{path}: not a {TRUTH_FORMAT} file (format={data.get('format')!r})")
    return {key: {name: bool(value[name]) for name in data["findings_names"]} for key, value in data["records"].items()}


def load_truth_boxes(path_or_dir: str | Path) -> dict[str, list[dict[str, Any]]]:
    """The drawn lesions' boxes of a ground-truth sidecar ({} when it has none)."""
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / TRUTH_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != TRUTH_FORMAT:
        raise ValueError(f"{path}: not a {TRUTH_FORMAT} file (format={data.get('format')!r})")
    return {key: [dict(box) for box in value] for key, value in data.get("boxes", {}).items()}


# ---------------------------------------------------------------------------
# Where synthetic trees live, shared by the trainer and `medcap data synth`

DEFAULT_IMAGE_SIZE = 256
COMPLETE_MARKER = ".complete"
#: Written into the marker; a tree written by another version of the writers is
#: written again (e.g. MediCat captions gained their figure labels in version 2).
WRITER_VERSION = 2


def synthetic_dir(
    data_dir: str | Path, dataset: str, *, num: int, seed: int, image_size: int = DEFAULT_IMAGE_SIZE, reports: str = "listed"
) -> Path:
    """`<data_dir>/synthetic/<dataset>-n<num>-s<seed>[-px<size>][-<reports>]`: one
    tree per (dataset, size, seed, image size, report variety), so differently
    made runs never clash."""
    name = f"{dataset}-n{num}-s{seed}" + ("" if image_size == DEFAULT_IMAGE_SIZE else f"-px{image_size}")
    name += "" if reports == "listed" else f"-{reports}"
    return Path(data_dir) / "synthetic" / name


def tree_dir(data) -> Path:
    """The synthetic tree a `DataConfig` with no `source_dir` reads."""
    return synthetic_dir(
        data.data_dir,
        data.name,
        num=data.synthetic_num,
        seed=data.synthetic_seed,
        image_size=data.synthetic_image_size,
        reports=data.synthetic_reports,
    )


def truth_for(data) -> dict[str, dict[str, bool]] | None:
    """The ground truth of the tree a `DataConfig` reads, or None for real data.

    That is the generated tree when `source_dir` is empty, or a `source_dir`
    that is itself a synthetic tree (it holds `synthetic_truth.json`); the
    evaluators then score findings against what was drawn, not only against
    the paraphrased reference text.
    """
    path = tree_dir(data) if data.synthetic else Path(data.source_dir)
    path = path / TRUTH_FILE
    return load_truth(path) if path.is_file() else None


def truth_boxes_for(data) -> dict[str, list[dict[str, Any]]] | None:
    """The drawn lesions' boxes of the tree a `DataConfig` reads (see
    `truth_for`), or None when it is not a synthetic tree with boxes."""
    path = (tree_dir(data) if data.synthetic else Path(data.source_dir)) / TRUTH_FILE
    if not path.is_file():
        return None
    boxes = load_truth_boxes(path)
    return boxes or None


def ensure_synthetic(
    source, out_dir: str | Path, *, num: int, seed: int, image_size: int = DEFAULT_IMAGE_SIZE, force: bool = False, reports: str = "listed"
) -> Path:
    """Writes `source`'s synthetic tree into `out_dir` unless a complete one is
    there. A marker written last tells a finished tree from an interrupted one
    (or one from another `WRITER_VERSION`), which is removed and written again.
    `reports`: a REPORT_VARIETIES name; only sources whose `synthesize` takes
    `reports` write another than `listed`."""
    import inspect
    import shutil

    from medcap.errors import ConfigError

    kwargs = {}
    if reports != "listed":
        if "reports" not in inspect.signature(source.synthesize).parameters:
            raise ConfigError(f"data.synthetic_reports={reports!r}: the synthetic {source.name} tree only writes 'listed' reports")
        kwargs["reports"] = reports

    out = Path(out_dir)
    marker = out / COMPLETE_MARKER
    stamp = f"ok v{WRITER_VERSION}"
    if marker.is_file() and marker.read_text().strip() == stamp and not force:
        return out
    if out.exists():
        shutil.rmtree(out)
    written = Path(source.synthesize(out, num=num, seed=seed, image_size=image_size, **kwargs))
    if written.resolve() != out.resolve():
        raise RuntimeError(f"{source.name}.synthesize wrote to {written}, expected {out}")
    marker.write_text(stamp + "\n")
    return out
