"""Image files -> pixels: exact values for every format, from both decoders.

Every case checks `load_pixels` (numpy) and the tf.data path
(`decode_pixels`, `read_image`) against the same expected array. DICOM files
are written here with pydicom; windowed values come from the reference
linear window function below, written from DICOM PS3.3 C.11.2.1.2.1.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tensorflow as tf
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import (
    MPEG2MPML,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
)

from medcap.data import images
from medcap.data.base import DataError
from medcap.data.images import check_image
from medcap.data.pipeline import ImageDecoder, ImageSpec, read_image
from medcap.data.synthetic import encode_png
from medcap.data.tfds_builders import image_for_tfds
from medcap.testing import write_dicom


def linear_window(x, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1, output range 0..255:
    x <= c - 0.5 - (w-1)/2 -> 0; x > c - 0.5 + (w-1)/2 -> 255;
    else ((x - (c - 0.5)) / (w - 1) + 0.5) * 255."""
    x = np.asarray(x, np.float64)
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    inside = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    return np.where(x <= low, 0.0, np.where(x > high, 255.0, inside))


def save(path: Path, image: Image.Image, **kwargs) -> str:
    image.save(path, **kwargs)
    return str(path)


def assert_decodes_to(path: str, expected: np.ndarray) -> None:
    """Both decoders give `expected` (H, W, 3) exactly, and read_image at the
    native size gives it as float32."""
    expected = np.asarray(expected, np.uint8)
    assert expected.ndim == 3 and expected.shape[-1] == 3
    numpy_pixels = images.load_pixels(path)
    assert numpy_pixels.dtype == np.uint8
    np.testing.assert_array_equal(numpy_pixels, expected)
    tf_pixels = images.decode_pixels(tf.constant(path))
    assert tf_pixels.dtype == tf.uint8 and tf_pixels.shape.as_list()[-1] == 3
    np.testing.assert_array_equal(tf_pixels.numpy(), expected)
    np.testing.assert_array_equal(in_graph(path), expected)
    resized = read_image(tf.constant(path), expected.shape[:2]).numpy()
    np.testing.assert_allclose(resized, expected.astype(np.float32), atol=1e-3)  # same size: no resampling


def in_graph(path: str) -> np.ndarray:
    """`decode_pixels` as tf.data runs it (graph mode)."""
    dataset = tf.data.Dataset.from_tensors(tf.constant(path)).map(images.decode_pixels)
    assert dataset.element_spec.shape.as_list() == [None, None, 3]
    return next(iter(dataset)).numpy()


def rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(gray)[..., None], 3, axis=-1)


# ---------------------------------------------------------------------------
# PNG, JPEG and the Pillow-only formats


def test_8bit_grayscale_png(tmp_path):
    gray = np.array([[0, 1, 127, 128], [200, 254, 255, 3]], np.uint8)
    assert_decodes_to(save(tmp_path / "g.png", Image.fromarray(gray)), rgb(gray))


def test_16bit_grayscale_png_scales_instead_of_clipping(tmp_path):
    values = np.array([[0, 257, 65535, 1000], [128, 129, 32767, 65280]], np.uint16)
    path = save(tmp_path / "g16.png", Image.fromarray(values))
    assert Image.open(path).mode == "I;16"
    expected = np.array([[0, 1, 255, 4], [0, 1, 127, 254]], np.uint8)  # round(v * 255 / 65535)
    np.testing.assert_array_equal(expected, np.round(values.astype(float) * 255 / 65535))
    assert_decodes_to(path, rgb(expected))


def test_16bit_colour_png_keeps_more_than_the_high_byte(tmp_path):
    # Pillow reads these as 8-bit high bytes (65280 -> 255); ours gives 254.
    values = np.array([[[65280, 257, 65535], [1000, 0, 32896]]], np.uint16)
    path = tmp_path / "c16.png"
    path.write_bytes(tf.io.encode_png(values).numpy())
    assert_decodes_to(str(path), np.array([[[254, 1, 255], [4, 0, 128]]], np.uint8))


def with_sbit(png: bytes, bits: bytes) -> bytes:
    """`png` with an sBIT chunk right after IHDR, as encoders write it (length,
    type, data, CRC-32 of type and data)."""
    import zlib

    chunk = len(bits).to_bytes(4, "big") + b"sBIT" + bits + zlib.crc32(b"sBIT" + bits).to_bytes(4, "big")
    ihdr_end = 8 + 4 + 4 + 13 + 4
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def test_16bit_png_with_12_significant_bits_of_raw_values_uses_the_12_bit_range(tmp_path):
    raw = np.array([[0, 1000, 2048, 4095]], np.uint16)  # a 12-bit detector's values, not scaled up
    path = tmp_path / "sbit12.png"
    path.write_bytes(with_sbit(tf.io.encode_png(raw[..., None]).numpy(), b"\x0c"))
    assert images.png_significant_bits(path.read_bytes()) == 12
    assert_decodes_to(str(path), rgb(np.rint(raw * 255.0 / 4095)))  # not v * 255 / 65535, nearly black


def test_16bit_png_scaled_as_the_png_specification_asks_keeps_the_16_bit_rule(tmp_path):
    scaled = np.array([[0, 1000, 2048, 4095]], np.uint16) << 4  # left-shifted to 16 bits
    path = tmp_path / "sbit12-scaled.png"
    path.write_bytes(with_sbit(tf.io.encode_png(scaled[..., None]).numpy(), b"\x0c"))
    assert_decodes_to(str(path), rgb(np.rint(scaled * 255.0 / 65535)))
    no_sbit = tmp_path / "raw12.png"  # raw 12-bit values without sBIT: nothing is guessed
    no_sbit.write_bytes(tf.io.encode_png((scaled >> 4)[..., None]).numpy())
    assert images.png_significant_bits(no_sbit.read_bytes()) is None
    assert_decodes_to(str(no_sbit), rgb(np.rint((scaled >> 4) * 255.0 / 65535)))


def test_rgba_png_drops_alpha_without_compositing(tmp_path):
    pixels = np.array([[[10, 20, 30, 0], [200, 100, 50, 128], [1, 2, 3, 255]]], np.uint8)
    assert_decodes_to(save(tmp_path / "a.png", Image.fromarray(pixels, "RGBA")), pixels[..., :3])


def test_palette_png_expands_to_rgb(tmp_path):
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 17, 34, 51]
    indices = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(palette)
    expected = np.array(palette, np.uint8).reshape(-1, 3)[indices]
    assert_decodes_to(save(tmp_path / "p.png", image), expected)
    # A transparent index keeps its palette colour.
    assert_decodes_to(save(tmp_path / "pt.png", image, transparency=3), expected)


def test_gray_alpha_png(tmp_path):
    pixels = np.array([[[0, 255], [90, 0], [255, 7]]], np.uint8)
    assert_decodes_to(save(tmp_path / "la.png", Image.fromarray(pixels, "LA")), rgb(pixels[..., 0]))


def test_rgb_jpeg_matches_pillow_exactly(tmp_path):
    flat = np.zeros((32, 48, 3), np.uint8)
    flat[:16], flat[16:] = (200, 30, 90), (10, 220, 120)
    path = save(tmp_path / "flat.jpg", Image.fromarray(flat), quality=100)
    pillow = np.asarray(Image.open(path).convert("RGB"))
    assert_decodes_to(path, pillow)
    # Away from the colour edge (4:2:0 chroma blends across it), only colour conversion rounding.
    assert np.abs(pillow[:8].astype(int) - flat[:8]).max() <= 1
    assert np.abs(pillow[24:].astype(int) - flat[24:]).max() <= 1
    # Detailed content: TensorFlow's default fast IDCT would differ by tens of levels here.
    noise = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    path = save(tmp_path / "noise.jpg", Image.fromarray(noise), quality=100)
    assert_decodes_to(path, np.asarray(Image.open(path).convert("RGB")))


def test_grayscale_jpeg_is_replicated(tmp_path):
    gray = np.random.default_rng(1).integers(0, 256, (24, 40), dtype=np.uint8)
    path = save(tmp_path / "g.jpg", Image.fromarray(gray), quality=90)
    pillow = np.asarray(Image.open(path))
    assert pillow.ndim == 2
    assert_decodes_to(path, rgb(pillow))


def test_grayscale_jpeg_agrees_with_an_independent_decoder(tmp_path):
    """The expectation comes from another JPEG implementation, pylibjpeg-libjpeg
    (Thomas Richter's libjpeg), not from libjpeg-turbo, which both of our entry
    points use: within one grey level of it, where TensorFlow's default fast
    IDCT is off by more."""
    from libjpeg import decode

    gray = np.random.default_rng(1).integers(0, 256, (48, 64), dtype=np.uint8)
    path = save(tmp_path / "noise.jpg", Image.fromarray(gray), quality=90)
    independent = decode(Path(path).read_bytes()).astype(int)
    ours = images.load_pixels(path)[..., 0].astype(int)
    assert np.abs(ours - independent).max() <= 1
    fast = tf.io.decode_jpeg(Path(path).read_bytes(), channels=1).numpy()[..., 0].astype(int)
    assert np.abs(fast - independent).max() > 2


def test_cmyk_jpeg_gives_the_same_pixels_on_both_paths(tmp_path):
    rgb_pixels = np.random.default_rng(2).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    path = save(tmp_path / "cmyk.jpg", Image.fromarray(rgb_pixels).convert("CMYK"), quality=95)
    assert Image.open(path).mode == "CMYK"
    assert_decodes_to(path, np.asarray(Image.open(path).convert("RGB")))


def test_bmp_and_gif_follow_the_same_rules(tmp_path):
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 17, 34, 51] + [0] * (256 * 3 - 12)
    indices = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(palette)
    expected = np.array(palette, np.uint8).reshape(-1, 3)[indices]
    assert_decodes_to(save(tmp_path / "p.bmp", image), expected)  # TF's BMP decoder ignores palettes
    assert_decodes_to(save(tmp_path / "p.gif", image, transparency=3), expected)  # TF's GIF decoder blacks these out


def test_large_image_exact_pixels_and_resize(tmp_path):
    height, width = 2048, 2500
    values = np.zeros((height, width), np.uint16)
    values[: height // 2, width // 2 :] = 1000
    values[height // 2 :, : width // 2] = 40000
    values[height // 2 :, width // 2 :] = 65535
    values[7, 11], values[2047, 2499] = 257, 12345
    path = save(tmp_path / "large.png", Image.fromarray(values))
    expected = {(0, 0): 0, (0, 2499): 4, (2047, 0): 156, (1500, 1500): 255, (7, 11): 1, (2047, 2499): 48}
    numpy_pixels = images.load_pixels(path)
    tf_pixels = images.decode_pixels(tf.constant(path)).numpy()
    assert numpy_pixels.shape == tf_pixels.shape == (height, width, 3)
    np.testing.assert_array_equal(numpy_pixels, tf_pixels)
    for (row, col), value in expected.items():
        assert tuple(numpy_pixels[row, col]) == (value,) * 3, (row, col)
    resized = read_image(tf.constant(path), (224, 224)).numpy()
    assert resized.shape == (224, 224, 3)
    # Quadrant centres are flat: resampling keeps their value.
    for (row, col), value in {(56, 56): 0, (56, 168): 4, (168, 56): 156, (168, 168): 255}.items():
        np.testing.assert_allclose(resized[row, col], value, atol=1e-3)


# ---------------------------------------------------------------------------
# DICOM


@pytest.mark.parametrize("bits_stored, center, width", [(12, 2048.0, 1000.0), (16, 30000.0, 20001.0)])
def test_dicom_window_monochrome2(tmp_path, bits_stored, center, width):
    top = 2**bits_stored - 1
    stored = np.array([[0, 1000, int(center) - 300, int(center)], [int(center) + 150, int(center) + 450, top - 1, top]], np.uint16)
    path = write_dicom(tmp_path / "w.dcm", stored, bits_stored=bits_stored, WindowCenter=center, WindowWidth=width)
    expected = np.rint(linear_window(stored, center, width))
    assert 0 < expected[0, 2] < expected[0, 3] < expected[1, 0] < 255  # values inside the window
    assert_decodes_to(path, rgb(expected))


def test_dicom_monochrome1_is_inverted(tmp_path):
    stored = np.array([[0, 300, 500, 700, 1023]], np.uint16)
    path = write_dicom(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1", bits_stored=10,
                       WindowCenter=512, WindowWidth=600)
    expected = np.rint(255.0 - linear_window(stored, 512, 600))
    assert expected[0, 0] == 255 and expected[0, -1] == 0
    assert_decodes_to(path, rgb(expected))


def test_dicom_rescale_then_window(tmp_path):
    # CT-like: signed stored values, HU = 2 * stored - 1024, a soft-tissue window.
    stored = np.array([[-100, 400, 512, 540, 600, 1000]], np.int16)
    path = write_dicom(tmp_path / "ct.dcm", stored, RescaleSlope=2, RescaleIntercept=-1024,
                       WindowCenter=40, WindowWidth=400)
    expected = np.rint(linear_window(stored.astype(float) * 2 - 1024, 40, 400))
    assert expected[0].tolist() == [0, 0, 102, 138, 215, 255]  # HU -1224, -224, 0, 56, 176, 976
    assert_decodes_to(path, rgb(expected))


def test_dicom_without_window_uses_min_max(tmp_path):
    stored = np.array([[100, 600, 1100, 2100]], np.uint16)
    path = write_dicom(tmp_path / "mm.dcm", stored, bits_stored=12)
    assert_decodes_to(path, rgb(np.rint((stored - 100) * 255.0 / 2000)))


def test_dicom_detected_by_magic_and_by_extension(tmp_path):
    stored = np.array([[0, 4095], [2048, 1024]], np.uint16)
    expected = rgb(np.rint(stored * 255.0 / 4095))
    no_extension = write_dicom(tmp_path / "image", stored, bits_stored=12)
    assert Path(no_extension).read_bytes()[128:132] == b"DICM"
    assert_decodes_to(no_extension, expected)
    misnamed = write_dicom(tmp_path / "image.png", stored, bits_stored=12)
    assert_decodes_to(misnamed, expected)
    bare = write_dicom(tmp_path / "bare.dcm", stored, bits_stored=12, preamble=False)
    assert Path(bare).read_bytes()[128:132] != b"DICM"
    assert_decodes_to(bare, expected)


def test_dicom_multiframe_gives_the_first_frame(tmp_path):
    frames = np.stack([np.array([[0, 50], [100, 200]], np.uint8), np.full((2, 2), 9, np.uint8)])
    path = write_dicom(tmp_path / "mf.dcm", frames, frames=True, WindowCenter=100.5, WindowWidth=202)
    assert_decodes_to(path, rgb(np.rint(linear_window(frames[0], 100.5, 202))))


def test_dicom_rgb(tmp_path):
    pixels = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [12, 34, 56]]], np.uint8)
    assert_decodes_to(write_dicom(tmp_path / "rgb.dcm", pixels, photometric="RGB"), pixels)


def test_dicom_ybr_full_and_palette_colour(tmp_path):
    ybr = np.array([[[128, 128, 128], [255, 128, 128], [0, 128, 128]]], np.uint8)  # neutral chroma
    assert_decodes_to(write_dicom(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL"), rgb([[128, 255, 0]]))
    tables = {"Red": [65535, 0, 257], "Green": [0, 65535, 1000], "Blue": [0, 0, 32896]}  # 16-bit entries
    attributes = {}
    for colour, table in tables.items():
        attributes[f"{colour}PaletteColorLookupTableDescriptor"] = [3, 0, 16]
        attributes[f"{colour}PaletteColorLookupTableData"] = np.array(table, "<u2").tobytes()
    path = write_dicom(tmp_path / "palette.dcm", np.array([[0, 1, 2]], np.uint8), photometric="PALETTE COLOR", **attributes)
    assert_decodes_to(path, np.array([[[255, 0, 0], [0, 255, 0], [1, 4, 128]]], np.uint8))


def test_dicom_voi_lut_sequence(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    # 8-bit entries, 4096 of them (v -> v // 16); pydicom's own apply_voi wraps these around.
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 8]
    lut.LUTData = (np.arange(4096) // 16).astype("<u2").tobytes()
    stored = np.array([[0, 1000, 2048, 4095]], np.uint16)
    path = write_dicom(tmp_path / "lut.dcm", stored, bits_stored=12, VOILUTSequence=Sequence([lut]),
                       WindowCenter=100, WindowWidth=10)  # the LUT wins over the window
    assert_decodes_to(path, rgb(stored // 16))


@pytest.mark.parametrize(
    "window",
    [
        {"WindowCenter": None, "WindowWidth": None},  # present, empty (exported studies)
        {"WindowCenter": 1000, "WindowWidth": None},
        {"WindowCenter": 1000, "WindowWidth": 0},  # below PS3.3's minimum of 1
        {"WindowCenter": "", "WindowWidth": ""},
    ],
    ids=["both-empty", "width-empty", "width-zero", "blank-strings"],
)
def test_dicom_window_in_name_only_falls_back_to_min_max(tmp_path, window):
    stored = np.array([[100, 600, 1100, 2100]], np.uint16)
    path = write_dicom(tmp_path / "empty-window.dcm", stored, bits_stored=12, **window)
    assert images.voi_transform(pydicom.dcmread(path)) == "min-max"
    assert_decodes_to(path, rgb(np.rint((stored - 100) * 255.0 / 2000)))


def test_dicom_empty_voi_lut_falls_back_to_the_window(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 8]
    lut.LUTData = b""  # the element is there, its data is not
    stored = np.array([[0, 1000, 2048, 4095]], np.uint16)
    path = write_dicom(tmp_path / "empty-lut.dcm", stored, bits_stored=12, VOILUTSequence=Sequence([lut]),
                       WindowCenter=2048, WindowWidth=2001)
    assert images.voi_transform(pydicom.dcmread(path)) == "window"
    assert_decodes_to(path, rgb(np.rint(linear_window(stored, 2048, 2001))))


def test_presentation_lut_shape_inverse_inverts_once(tmp_path):
    stored = np.array([[0, 300, 500, 700, 1023]], np.uint16)
    window = {"bits_stored": 10, "WindowCenter": 512, "WindowWidth": 600}
    inverse = write_dicom(tmp_path / "inverse.dcm", stored, PresentationLUTShape="INVERSE", **window)
    assert_decodes_to(inverse, rgb(np.rint(255.0 - linear_window(stored, 512, 600))))
    # A DX MONOCHROME1 image carries INVERSE for the same inversion: not twice.
    both = write_dicom(tmp_path / "both.dcm", stored, photometric="MONOCHROME1", PresentationLUTShape="INVERSE", **window)
    assert_decodes_to(both, rgb(np.rint(255.0 - linear_window(stored, 512, 600))))
    identity = write_dicom(tmp_path / "identity.dcm", stored, PresentationLUTShape="IDENTITY", **window)
    assert_decodes_to(identity, rgb(np.rint(linear_window(stored, 512, 600))))


def test_dicom_without_file_meta_is_decoded_in_the_encoding_it_was_written_in(tmp_path):
    from pydicom.dataset import Dataset

    stored = np.array([[1, 256, 4095, 2048]], np.uint16)  # 256 reads as 1 with its bytes swapped
    ds = Dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 1, 4, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored, ds.HighBit = "MONOCHROME2", 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelData = stored.astype(">u2").tobytes()
    path = tmp_path / "big-endian.dcm"
    pydicom.dcmwrite(path, ds, implicit_vr=False, little_endian=False, enforce_file_format=False)
    assert "TransferSyntaxUID" not in pydicom.dcmread(path, force=True).file_meta
    assert_decodes_to(str(path), rgb(np.rint((stored - 1) * 255.0 / 4094)))


def test_frame_voi_lut_with_lut_macro_is_honoured(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 8]
    lut.LUTData = (255 - np.arange(4096) // 16).astype("<u2").tobytes()  # a reversing LUT: not min-max
    frame_voi = Dataset()
    frame_voi.VOILUTSequence = Sequence([lut])
    shared = Dataset()
    shared.FrameVOILUTSequence = Sequence([frame_voi])
    frames = np.stack([np.array([[0, 1000], [2048, 4095]], np.uint16), np.zeros((2, 2), np.uint16)])
    path = write_dicom(tmp_path / "enhanced.dcm", frames, frames=True, bits_stored=12,
                       SharedFunctionalGroupsSequence=Sequence([shared]))
    assert_decodes_to(path, rgb(255 - frames[0] // 16))


def ybr_full_to_rgb(ybr: np.ndarray) -> np.ndarray:
    """PS3.3 C.7.6.3.1.2 (YBR_FULL, JPEG File Interchange Format): the expectation,
    computed here from the standard's equations, not by the decoder's code."""
    y, cb, cr = (ybr[..., i].astype(np.float64) for i in range(3))
    r = y + 1.402 * (cr - 128)
    g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
    b = y + 1.772 * (cb - 128)
    return np.clip(np.rint(np.stack([r, g, b], axis=-1)), 0, 255)


def test_dicom_ybr_full_with_chroma_follows_the_standards_equations(tmp_path):
    ybr = np.array([[[120, 60, 200], [90, 200, 80], [200, 140, 110]]], np.uint8)  # strong, unequal chroma
    pixels = images.load_pixels(write_dicom(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL"))
    expected = ybr_full_to_rgb(ybr)
    assert np.abs(pixels.astype(int) - expected).max() <= 1  # rounding inside the converter
    swapped = ybr_full_to_rgb(ybr[..., [0, 2, 1]])  # Cb and Cr exchanged
    assert np.abs(pixels.astype(int) - swapped).max() > 50


def test_dicom_ybr_full_422_shares_chroma_between_two_pixels(tmp_path):
    # Native YBR_FULL_422 stores Y1 Y2 Cb Cr for each horizontal pair of pixels.
    stored = bytes([100, 150, 60, 200, 30, 220, 200, 90])
    expanded = np.array([[[100, 60, 200], [150, 60, 200]], [[30, 200, 90], [220, 200, 90]]], np.uint8)
    path = write_dicom(tmp_path / "ybr422.dcm", np.zeros((2, 2, 3), np.uint8), photometric="YBR_FULL_422",
                       SamplesPerPixel=3, PlanarConfiguration=0)
    ds = pydicom.dcmread(path)
    ds.PixelData = stored
    ds.save_as(path)
    pixels = images.load_pixels(path).astype(int)
    assert np.abs(pixels - ybr_full_to_rgb(expanded)).max() <= 1
    assert np.abs(pixels - ybr_full_to_rgb(expanded[..., [0, 2, 1]])).max() > 50


def test_dicom_rgb_planar_configuration_1(tmp_path):
    pixels = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [12, 34, 56]]], np.uint8)
    planes = np.ascontiguousarray(pixels.transpose(2, 0, 1))  # R plane, G plane, B plane
    path = write_dicom(tmp_path / "planar.dcm", pixels, photometric="RGB", PlanarConfiguration=1, pixel_data=None)
    ds = pydicom.dcmread(path)
    ds.PixelData = planes.tobytes()
    ds.save_as(path)
    assert_decodes_to(path, pixels)


def test_dicom_monochrome1_without_window_is_stretched_then_inverted(tmp_path):
    stored = np.array([[100, 600, 1100, 2100]], np.uint16)
    path = write_dicom(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1", bits_stored=12)
    assert_decodes_to(path, rgb(np.rint(255.0 - (stored - 100) * 255.0 / 2000)))


def test_dicom_signed_samples_with_fewer_bits_stored_than_allocated(tmp_path):
    # 12 bits stored in 16 allocated, two's complement: -2048..2047; HU = stored (no rescale).
    stored = np.array([[-2048, -1000, 0, 2047]], np.int16)
    path = write_dicom(tmp_path / "signed12.dcm", stored, bits_stored=12, WindowCenter=0, WindowWidth=2001)
    assert_decodes_to(path, rgb(np.rint(linear_window(stored, 0, 2001))))


def test_dicom_modality_lut_sequence(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    lut = Dataset()
    lut.LUTDescriptor = [4, 0, 16]  # 4 entries from stored value 0
    lut.ModalityLUTType = "US"
    lut.LUTData = np.array([0, 1000, 3000, 4000], "<u2").tobytes()
    stored = np.array([[0, 1, 2, 3]], np.uint16)
    path = write_dicom(tmp_path / "modality-lut.dcm", stored, ModalityLUTSequence=Sequence([lut]))
    assert_decodes_to(path, rgb(np.rint(np.array([[0, 1000, 3000, 4000]]) * 255.0 / 4000)))  # then min-max


def test_the_voi_summary_counts_each_file_once_with_its_fallbacks(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    stored = np.array([[100, 600, 1100, 2100]], np.uint16)
    empty_lut = Dataset()
    empty_lut.LUTDescriptor = [4096, 0, 8]
    empty_lut.LUTData = b""
    files = [
        write_dicom(tmp_path / "window.dcm", stored, bits_stored=12, WindowCenter=1000, WindowWidth=2001),
        write_dicom(tmp_path / "empty.dcm", stored, bits_stored=12, WindowCenter=None, WindowWidth=None),
        write_dicom(tmp_path / "zero.dcm", stored, bits_stored=12, WindowCenter=1000, WindowWidth=0),
        write_dicom(tmp_path / "lut.dcm", stored, bits_stored=12, VOILUTSequence=Sequence([empty_lut]),
                    WindowCenter=1000, WindowWidth=2001),
        write_dicom(tmp_path / "plain.dcm", stored, bits_stored=12),
    ]
    images.reset_dicom_voi_summary()
    for path in files + files[:2]:  # decoding a file again (a second epoch) does not count it twice
        images.load_pixels(path)
    assert images.dicom_voi_summary() == {
        "images": 5,
        "transform": {"window": 2, "min-max": 3},
        "fallbacks": {
            "window element present but empty": 1,
            "window width below 1": 1,
            "VOI LUT without a usable descriptor or data": 1,
        },
    }
    images.reset_dicom_voi_summary()
    assert images.dicom_voi_summary()["images"] == 0


def test_jpeg_baseline_dicom_decodes_through_pylibjpeg(tmp_path):
    from pydicom.pixels import get_decoder

    assert "pylibjpeg" in get_decoder(JPEGBaseline8Bit).available_plugins
    gray = np.zeros((16, 24), np.uint8)  # flat 8x8 blocks decode exactly
    gray[:8, :8], gray[8:, 8:16], gray[:, 16:] = 100, 200, 255
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, "JPEG", quality=100)
    path = write_dicom(tmp_path / "jpeg.dcm", gray, syntax=JPEGBaseline8Bit, pixel_data=encapsulate([buffer.getvalue()]))
    assert_decodes_to(path, rgb(gray))  # min 0, max 255: min-max keeps the values


def test_jpeg2000_lossless_dicom_is_exact(tmp_path):
    from pydicom.pixels import get_decoder

    assert "pylibjpeg" in get_decoder(JPEG2000Lossless).available_plugins
    stored = (np.arange(32 * 32).reshape(32, 32) * 4).astype(np.uint16)  # 0..4092, 12 bits
    path = write_dicom(tmp_path / "native.dcm", stored, bits_stored=12, WindowCenter=2000, WindowWidth=3001)
    ds = pydicom.dcmread(path)
    ds.compress(JPEG2000Lossless, stored, encoding_plugin="pylibjpeg")
    ds.save_as(tmp_path / "j2k.dcm")
    assert_decodes_to(str(tmp_path / "j2k.dcm"), rgb(np.rint(linear_window(stored, 2000, 3001))))


def test_missing_decoder_names_file_syntax_and_package(tmp_path, monkeypatch):
    from pydicom.pixels import get_decoder

    # pylibjpeg-libjpeg decodes JPEG-LS here; hide every plugin to stand for a
    # machine without one.
    monkeypatch.setattr(get_decoder(JPEGLSLossless), "_available", {})
    path = write_dicom(tmp_path / "jls.dcm", np.zeros((4, 4), np.uint16), syntax=JPEGLSLossless,
                       pixel_data=encapsulate([b"\xff\xd8\xff\xf7fake"]))
    with pytest.raises(DataError) as caught:
        images.load_pixels(path)
    message = str(caught.value)
    assert path in message and "1.2.840.10008.1.2.4.80" in message and "JPEG-LS" in message
    assert "pip install pyjpegls" in message
    with pytest.raises(DataError, match=r"pip install pyjpegls"):
        images.decode_pixels(tf.constant(path))  # eager: numpy_function re-raises the DataError
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"jls\.dcm.*pip install pyjpegls"):
        in_graph(path)


def test_syntax_without_any_decoder(tmp_path):
    path = write_dicom(tmp_path / "video.dcm", np.zeros((4, 4), np.uint8), syntax=MPEG2MPML,
                       pixel_data=encapsulate([b"\x00\x00\x01\xb3fake"]))
    with pytest.raises(DataError) as caught:
        images.load_pixels(path)
    message = str(caught.value)
    assert path in message and "1.2.840.10008.1.2.4.100" in message and "MPEG2" in message
    assert "no pydicom decoder exists" in message


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the corrupt file's own bytes
def test_corrupt_files_name_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.dcm"
    corrupt.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff garbage")
    truncated = tmp_path / "truncated.png"
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 40), dtype=np.uint8)).save(buffer, "PNG")
    truncated.write_bytes(buffer.getvalue()[:600])  # inside the image data
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    for path in (corrupt, truncated, text, tmp_path / "missing.png"):
        with pytest.raises(DataError) as caught:
            images.load_pixels(path)
        assert caught.value.file == str(path)
    with pytest.raises(tf.errors.InvalidArgumentError, match="corrupt.dcm"):
        in_graph(str(corrupt))


# ---------------------------------------------------------------------------
# The other readers share the decoder


def test_check_image_decodes_16bit_png_and_dicom(tmp_path):
    png16 = save(tmp_path / "g16.png", Image.fromarray(np.array([[0, 65535]], np.uint16)))
    dicom = write_dicom(tmp_path / "x.dcm", np.array([[0, 4095]], np.uint16), bits_stored=12)
    check_image(png16, "decode")
    check_image(dicom, "decode")
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"\0" * 128 + b"DICM" + b"\x00" * 8)
    with pytest.raises(DataError, match="unreadable image") as caught:
        check_image(broken, "decode", file="ann.csv", record="line 3")
    assert "broken.dcm" in str(caught.value) and caught.value.record == "line 3"


def test_image_for_tfds_scales_16bit_and_decodes_dicom(tmp_path):
    values = np.array([[0, 257, 65535, 1000]], np.uint16)
    png16 = save(tmp_path / "g16.png", Image.fromarray(values))
    stored = image_for_tfds(png16, 1)
    assert isinstance(stored, np.ndarray) and stored.shape == (1, 4, 1)
    np.testing.assert_array_equal(stored[..., 0], images.load_pixels(png16)[..., 0])
    assert stored[0, :, 0].tolist() == [0, 1, 255, 4]  # Pillow's own "L" conversion gives 255 for 1000
    dicom = write_dicom(tmp_path / "x.dcm", np.array([[0, 1000, 4095]], np.uint16), bits_stored=12)
    np.testing.assert_array_equal(image_for_tfds(dicom, 3), images.load_pixels(dicom))
    png8 = save(tmp_path / "g8.png", Image.fromarray(np.zeros((3, 3), np.uint8)))
    assert image_for_tfds(png8, 1) == Path(png8).read_bytes()


def test_image_decoder_and_features_see_the_same_pixels_for_png_and_dicom(tmp_path):
    from medcap.features import FeatureExtractor, FeatureSpec, _raise_bad_image

    gray = np.random.default_rng(2).integers(0, 256, (40, 40), dtype=np.uint8)
    gray[0, 0], gray[0, 1] = 0, 255  # full range: the DICOM's min-max stretch is the identity
    png = save(tmp_path / "x.png", Image.fromarray(gray))
    dicom = write_dicom(tmp_path / "x.dcm", gray)
    paths = np.array([png, dicom], dtype=object)
    decoder = ImageDecoder(ImageSpec(size=(40, 40), normalization="none"))
    single = [decoder({"image": tf.constant(p)})["image"].numpy() for p in paths]
    np.testing.assert_array_equal(single[0], single[1])
    np.testing.assert_allclose(single[0], rgb(gray).astype(np.float32), atol=1e-3)
    views = tf.data.Dataset.from_tensor_slices({"image": paths[None]}).map(decoder)
    both = next(iter(views))["image"].numpy()  # a multi-view example: (2, 40, 40, 3)
    np.testing.assert_array_equal(both[0], both[1])
    # The feature extractor's (and `medcap caption`'s) input pipeline.
    extractor = FeatureExtractor(FeatureSpec(image_size=(32, 32), normalization="none", weights="none"))
    batch = next(iter(extractor.dataset([png, dicom], batch_size=2))).numpy()
    assert batch.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(batch[0], batch[1])
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM")
    with pytest.raises(DataError, match="cannot read image") as caught:
        _raise_bad_image([png, str(bad)], ["a", "b"], RuntimeError("batch"))
    assert caught.value.file == str(bad) and caught.value.record == "b"


def test_check_image_modes(tmp_path: Path):
    good = tmp_path / "good.png"
    good.write_bytes(encode_png(np.full((16, 16), 100, np.uint8)))
    truncated = tmp_path / "truncated.png"
    data = encode_png(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    truncated.write_bytes(data[: len(data) // 2])
    for mode in images.IMAGE_CHECKS:
        check_image(good, mode)
    check_image(tmp_path / "missing.png", "none")
    check_image(truncated, "exists")  # "exists" does not decode
    with pytest.raises(DataError) as info:
        check_image(truncated, "decode", file="ann.json", record="train[0]", field="image_path[0]")
    assert (info.value.file, info.value.record, info.value.field) == ("ann.json", "train[0]", "image_path[0]")
    assert "unreadable image" in str(info.value) and "truncated.png" in str(info.value)
    with pytest.raises(DataError, match="missing image file .*missing.png"):
        check_image(tmp_path / "missing.png", "exists")
    with pytest.raises(ValueError, match="unknown image check"):
        check_image(good, "full")
