"""Image files -> pixels: one decoder, the same values for every format medcap reads.

One idea, though long: every rule below must hold in both entry points, so
the sniffing, the numpy decoder, the DICOM display pipeline and the tf.data
entry point live together.

Every image becomes `uint8` RGB pixels of shape (height, width, 3). Two entry
points give identical values for the same file:

* `load_pixels(path)`: numpy, Pillow and pydicom; used by data checks
  (`check_image`), TFDS builds and error reports.
* `decode_pixels(path_tensor)`: the tf.data entry point (`read_image`). PNG
  and JPEG keep TensorFlow's native kernels; everything else, DICOM among
  them, goes through `load_pixels` in `tf.numpy_function`.

Medcap's rules, the same in both:

* **16-bit samples** map to 8 bits as `round(v * 255 / 65535)` (computed in
  integers as `(v * 255 + 32767) // 65535`; 65535 is odd, so there are no
  ties), so 0, 257, 65535, 1000 become 0, 1, 255, 4. Neither library does
  this by default: Pillow's "I;16" -> "L" conversion clips at 255 and
  TensorFlow's uint8 PNG decode keeps the high byte. An 8-bit sample is kept
  as is (as uint16, TensorFlow reads it as `v * 257`, which maps back to `v`).
* **16-bit PNGs with fewer significant bits.** A PNG's `sBIT` chunk gives the
  bits that carry data (12 for a 12-bit detector). The PNG specification
  asks the encoder to scale such samples up to the full 16 bits, and then
  the rule above is right; many medical exports instead store the raw
  values (0..4095), which `v * 255 / 65535` would make nearly black. So,
  with `sBIT` = b < 16 and every sample at most 2**b - 1, the samples are
  taken as raw b-bit values and map as `round(v * 255 / (2**b - 1))`;
  otherwise (scaled as the specification asks, or no `sBIT` chunk) the
  16-bit rule applies. Without `sBIT` nothing is guessed from the content: a
  16-bit PNG holding raw 12-bit values and no `sBIT` comes out dark.
* **Alpha is dropped**, not composited onto a background: the colour
  channels are kept as stored, whatever their opacity.
* **Palette** images are expanded to RGB through their palette (a
  transparent index keeps its palette colour).
* **Grayscale** is replicated to 3 channels; 1-, 2- and 4-bit grayscale is
  first stretched to 8 bits (libpng and Pillow agree: 4-bit `v` -> `17 v`).
* **First frame only**: animated PNG/GIF and multi-frame DICOM.

Formats:

* PNG: Pillow in `load_pixels`, libpng through `tf.io.decode_png` in
  `decode_pixels` for 8-bit files; 16-bit files go through `load_pixels` in
  both (the `sBIT` rule needs the chunk and the samples together). Pillow
  keeps only the high byte of 16-bit colour or gray+alpha PNGs, so those
  two kinds are read with `tf.io.decode_png` inside `load_pixels`.
* JPEG: Pillow and `tf.io.decode_jpeg` are both libjpeg-turbo and agree
  exactly once TensorFlow uses the accurate integer IDCT
  (`dct_method="INTEGER_ACCURATE"`); its default fast IDCT is off by up to
  tens of grey levels on detailed high-quality images.
* BMP, GIF, TIFF, WebP and anything else Pillow opens: Pillow, in both
  entry points. TensorFlow's own BMP decoder ignores palettes and its GIF
  decoder blacks out transparent pixels, so it is not used for them.
* DICOM, detected by content (the "DICM" marker at byte offset 128 that
  follows the preamble of a DICOM Part 10 file) or by a `.dcm` name (then a
  file without preamble is read as a bare data set; without a transfer
  syntax in its file meta it is taken as Implicit VR Little Endian, the
  DICOM default). pydicom decodes the pixel data (first frame), converting
  YBR_FULL / YBR_FULL_422 / YBR_ICT / YBR_RCT to RGB and expanding PALETTE
  COLOR through its lookup tables. Grayscale (MONOCHROME1/2) then goes
  through the display pipeline of PS3.3 C.11:

  1. Modality LUT: the Modality LUT Sequence, or RescaleSlope and
     RescaleIntercept (`pydicom.pixels.apply_modality_lut`).
  2. VOI: the VOI LUT Sequence (first LUT; preferred when a window is also
     present, as pydicom does), else the first WindowCenter/WindowWidth pair
     with its VOILUTFunction (LINEAR by default, LINEAR_EXACT, SIGMOID;
     `pydicom.pixels.apply_windowing`), both onto 0..255. With neither, the
     frame's own minimum..maximum is stretched to 0..255 (a constant frame
     becomes 0); such files carry no display intent, and a fixed
     BitsStored range would leave 12-bit data in a 16-bit container dark.
     A transform present in name only is skipped for the next one in this
     order (`voi_transform`): a VOI LUT item without a three-value
     descriptor or with empty LUTData; a WindowCenter or WindowWidth
     element that is present but empty, or a width below 1 (PS3.3
     C.11.2.1.2 requires >= 1). Exported studies carry such elements; they
     fall back instead of failing, so one file cannot stop a training run.
     `dicom_voi_summary` counts, per distinct file decoded in the process,
     the transform taken and the fallbacks; the trainer writes it into the
     run's data.json (`dicom_voi`).
  3. MONOCHROME1 (0 = white), or a PresentationLUTShape of INVERSE, is
     inverted once: `255 - v`, before rounding to the nearest integer
     (ties to even).

  A data set without file meta (no group 0002) is decoded with the
  encoding pydicom found while reading it (`original_encoding`: implicit
  or explicit VR, little or big endian), not always the DICOM default.

  Enhanced multi-frame objects keep rescale and window values in their
  functional groups; frame 0's are used, a VOI LUT sequence inside the
  Frame VOI LUT macro included. Colour samples with BitsStored
  `b` > 8 map to 8 bits as `round(v * 255 / (2**b - 1))`, the 16-bit rule
  generalised.

  Compressed transfer syntaxes need pydicom plugins. medcap installs
  pylibjpeg with its libjpeg (JPEG baseline, extended, lossless; JPEG-LS)
  and OpenJPEG (JPEG 2000, HTJ2K) decoders; RLE and deflate are built in.
  A file whose syntax lacks a decoder raises `DataError` naming the file,
  the syntax's UID and name, and the package to install
  (`DECODER_PACKAGES`); a syntax no pydicom plugin decodes (MPEG/HEVC video,
  JPEG XL) says so.

Unreadable or corrupt files raise `DataError` naming the file.

`check_image` is what the readers call for each image a record names, per
`IMAGE_CHECKS` mode: "none", "exists" (the file is there and non-empty) or
"decode" (`load_pixels` decodes every pixel, which catches truncated
PNG/JPEG files and DICOM files without a usable decoder).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from medcap.data.base import DataError
from medcap.data.io import read_bytes

IMAGE_CHECKS = ("none", "exists", "decode")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
DICOM_MAGIC = b"DICM"
#: The DICOM Part 10 preamble is 128 bytes; the magic follows it.
DICOM_MAGIC_OFFSET = 128
#: Bytes that identify a file: the DICOM preamble and magic.
_HEAD = DICOM_MAGIC_OFFSET + len(DICOM_MAGIC)

#: pip packages that give pydicom a decoder for a compressed transfer syntax.
DECODER_PACKAGES: dict[str, tuple[str, ...]] = {
    "1.2.840.10008.1.2.4.50": ("pylibjpeg", "pylibjpeg-libjpeg"),  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51": ("pylibjpeg", "pylibjpeg-libjpeg"),  # JPEG Extended (Process 2 and 4)
    "1.2.840.10008.1.2.4.57": ("pylibjpeg", "pylibjpeg-libjpeg"),  # JPEG Lossless (Process 14)
    "1.2.840.10008.1.2.4.70": ("pylibjpeg", "pylibjpeg-libjpeg"),  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": ("pyjpegls",),  # JPEG-LS Lossless (pylibjpeg-libjpeg also decodes it)
    "1.2.840.10008.1.2.4.81": ("pyjpegls",),  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90": ("pylibjpeg", "pylibjpeg-openjpeg"),  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": ("pylibjpeg", "pylibjpeg-openjpeg"),  # JPEG 2000
    "1.2.840.10008.1.2.4.201": ("pylibjpeg", "pylibjpeg-openjpeg"),  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": ("pylibjpeg", "pylibjpeg-openjpeg"),  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": ("pylibjpeg", "pylibjpeg-openjpeg"),  # HTJ2K
    "1.2.840.10008.1.2.5": ("pylibjpeg", "pylibjpeg-rle"),  # RLE Lossless (pydicom has its own)
}
#: Names of transfer syntaxes newer than pydicom's UID dictionary.
_SYNTAX_NAMES = {
    "1.2.840.10008.1.2.4.110": "JPEG XL Lossless",
    "1.2.840.10008.1.2.4.111": "JPEG XL JPEG Recompression",
    "1.2.840.10008.1.2.4.112": "JPEG XL",
    "1.2.840.10008.1.2.8.1": "Deflated Image Frame Compression",
}
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


# ---------------------------------------------------------------------------
# Sniffing


def is_dicom(data: bytes, name: str | Path = "") -> bool:
    """True for the DICOM Part 10 marker at byte 128, or a `.dcm` name."""
    return data[DICOM_MAGIC_OFFSET:_HEAD] == DICOM_MAGIC or str(name).lower().endswith(".dcm")


def png_bit_depth(data: bytes) -> int | None:
    """Bits per sample of a PNG (its IHDR chunk comes first), None if not PNG."""
    return data[24] if data.startswith(PNG_MAGIC) and len(data) > 25 else None


def png_significant_bits(data: bytes) -> int | None:
    """The largest per-channel value of a PNG's `sBIT` chunk, None without one.
    `sBIT` must come before PLTE and IDAT, so the search stops there."""
    offset = len(PNG_MAGIC)
    while offset + 8 <= len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        if kind == b"sBIT":
            values = data[offset + 8 : offset + 8 + length]
            return max(values) if values else None
        if kind in (b"PLTE", b"IDAT", b"IEND"):
            return None
        offset += 12 + length
    return None


def scale_16bit_png(samples: np.ndarray, significant_bits: int | None) -> np.ndarray:
    """uint16 PNG samples -> uint8 by the module's 16-bit and `sBIT` rules."""
    if significant_bits is not None and 0 < significant_bits < 16:
        top = 2**significant_bits - 1
        if samples.size and int(samples.max()) <= top:
            return ((samples.astype(np.int64) * 255 + (top - 1) // 2) // top).astype(np.uint8)
    return scale_to_8bit(samples, 16)


# ---------------------------------------------------------------------------
# numpy decoder


def load_pixels(path: str | Path) -> np.ndarray:
    """uint8 (height, width, 3) pixels of an image file (see the module docstring);
    a missing or unreadable file is a DataError naming it."""
    return decode_bytes(read_bytes(path), Path(path))


def decode_bytes(data: bytes, name: str | Path) -> np.ndarray:
    """`load_pixels` of a file's bytes; `name` is the path (errors, `.dcm` detection)."""
    if not data:
        raise DataError("empty image file", file=name)
    pixels = _dicom_pixels(data, name) if is_dicom(data, name) else _raster_pixels(data, name)
    return np.ascontiguousarray(pixels, dtype=np.uint8)


def scale_to_8bit(values: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned `bits`-bit samples -> uint8 as round(v * 255 / (2**bits - 1))."""
    if bits <= 8:
        return values.astype(np.uint8)
    top = 2**bits - 1
    # top is odd, so adding (top - 1) // 2 before the floor division is exact rounding.
    return ((values.astype(np.int64) * 255 + (top - 1) // 2) // top).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=-1)


def _raster_pixels(data: bytes, name: str | Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    depth = png_bit_depth(data)
    if depth == 16:
        samples = _png16_samples(data, name)
        return scale_16bit_png(samples, png_significant_bits(data))
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # the first frame of animated files
            return _pillow_pixels(image, name)
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError("unknown image format (not PNG, JPEG, DICOM or another format Pillow reads)", file=name) from None
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, ...
        raise DataError(f"unreadable image: {err}", file=name) from None


def _pillow_pixels(image: Any, name: str | Path) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16"):
        return _gray_to_rgb(scale_to_8bit(np.asarray(image), 16))
    if mode == "I":
        # Some Pillow versions open 16-bit grayscale as 32-bit "I".
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DataError("32-bit integer samples are not supported", file=name)
        return _gray_to_rgb(scale_to_8bit(values, 16))
    if mode == "F":
        raise DataError("floating-point samples are not supported", file=name)
    # Pillow's RGB conversion drops alpha without compositing, expands
    # palettes and replicates grayscale: the module's rules for 8-bit data.
    return np.asarray(image.convert("RGB"))


def _png16_samples(data: bytes, name: str | Path) -> np.ndarray:
    """(H, W, 3) uint16 samples of a 16-bit PNG (libpng through TensorFlow:
    Pillow keeps only the high byte of 16-bit colour and gray+alpha)."""
    import tensorflow as tf

    try:
        return tf.io.decode_png(data, channels=3, dtype=tf.uint16).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
        raise DataError(f"unreadable image: {err.message.splitlines()[0]}", file=name) from None


# ---------------------------------------------------------------------------
# DICOM


def describe_syntax(uid: str) -> str:
    """'UID (name)' of a transfer syntax."""
    from pydicom.uid import UID

    name = UID(str(uid)).name
    if name == str(uid):
        name = _SYNTAX_NAMES.get(str(uid), "unknown transfer syntax")
    return f"{uid} ({name})"


def require_decoder(uid: str, name: str | Path) -> None:
    """Raises DataError when pydicom cannot decode transfer syntax `uid` here."""
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise DataError(
            f"transfer syntax {describe_syntax(uid)}: no pydicom decoder exists for it, so no package "
            "can be installed to read it; convert the file to an uncompressed transfer syntax first",
            file=name,
        ) from None
    if decoder.is_available:
        return
    packages = DECODER_PACKAGES.get(str(uid))
    hint = f"pip install {' '.join(packages)}" if packages else "; ".join(decoder.missing_dependencies)
    raise DataError(
        f"transfer syntax {describe_syntax(uid)} needs a pixel data decoder that is not installed: {hint}",
        file=name,
    )


def _dicom_pixels(data: bytes, name: str | Path) -> np.ndarray:
    import pydicom

    try:
        # Without the Part 10 marker (a `.dcm` name), read a bare data set.
        ds = pydicom.dcmread(io.BytesIO(data), force=data[DICOM_MAGIC_OFFSET:_HEAD] != DICOM_MAGIC)
    except Exception as err:  # pydicom raises InvalidDicomError, EOFError, ValueError, ...
        raise DataError(f"not a readable DICOM file: {err}", file=name) from None
    if "PixelData" not in ds:
        raise DataError("DICOM file has no pixel data (PixelData element)", file=name)
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = _syntax_as_read(ds)
    syntax = ds.file_meta.TransferSyntaxUID
    require_decoder(syntax, name)
    try:
        frame = pydicom.pixels.pixel_array(ds, index=0)
    except Exception as err:  # corrupt or inconsistent pixel data; the plugins raise anything
        raise DataError(f"cannot decode the pixel data ({describe_syntax(syntax)}): {err}", file=name) from None
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    try:
        if photometric in _MONOCHROME and frame.ndim == 2:
            pixels = _gray_to_rgb(_display_gray(frame, ds))
            _VOI_DECODED[str(name)] = (voi_transform(ds), voi_skipped(ds))
            return pixels
        if photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
            return scale_to_8bit(apply_color_lut(frame, ds), bits)
        if frame.ndim == 3 and frame.shape[-1] == 3:  # RGB, or YBR converted to RGB by pydicom
            return scale_to_8bit(frame, int(ds.get("BitsStored", 8)))
    except DataError:
        raise
    except Exception as err:  # malformed LUTs, windows, descriptors
        raise DataError(f"cannot apply the DICOM display transforms: {err}", file=name) from None
    raise DataError(
        f"unsupported PhotometricInterpretation {photometric or '(missing)'} with pixel array shape {frame.shape}",
        file=name,
    )


def _syntax_as_read(ds: Any) -> str:
    """The transfer syntax of a data set without file meta: the encoding pydicom
    found while reading it (`original_encoding`), else the DICOM default,
    Implicit VR Little Endian."""
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is False:
        return ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian
    return ImplicitVRLittleEndian


def _first_value(value: Any) -> Any:
    """The first value of a possibly multi-valued element; None when empty."""
    if value is None or isinstance(value, (str, bytes)) and not value.strip():
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return _first_value(value[0]) if len(value) else None
    return value


def usable_window(ds: Any) -> tuple[float, float] | None:
    """(center, width) of the first window when both elements hold a value and
    the width is at least 1 (PS3.3 C.11.2.1.2); None otherwise: an element that
    is present but empty, or a width of 0, is no window (pydicom's `apply_voi_lut`
    likewise treats an empty element as absent)."""
    center, width = (_first_value(ds.get(keyword)) for keyword in ("WindowCenter", "WindowWidth"))
    if center is None or width is None:
        return None
    try:
        center, width = float(center), float(width)
    except (TypeError, ValueError):
        return None
    return (center, width) if width >= 1 and np.isfinite(center) and np.isfinite(width) else None


def usable_voi_lut(ds: Any) -> Any:
    """The first VOI LUT item with a three-value descriptor and non-empty data, or None."""
    voi = ds.get("VOILUTSequence")
    if not voi:
        return None
    item = voi[0]
    descriptor, data = item.get("LUTDescriptor"), item.get("LUTData")
    if descriptor is None or len(descriptor) != 3 or data is None:
        return None
    if isinstance(data, (bytes, list, tuple)) and len(data) == 0:
        return None
    return item


#: Per DICOM file decoded in this process: (VOI transform, transforms skipped as unusable).
_VOI_DECODED: dict[str, tuple[str, tuple[str, ...]]] = {}


def voi_skipped(ds: Any) -> tuple[str, ...]:
    """The VOI transforms `ds` declares but `voi_transform` had to pass over, and why."""
    skipped = []
    if ds.get("VOILUTSequence") and usable_voi_lut(ds) is None:
        skipped.append("VOI LUT without a usable descriptor or data")
    if ("WindowCenter" in ds or "WindowWidth" in ds) and usable_window(ds) is None:
        width = _first_value(ds.get("WindowWidth"))
        try:
            below_one = width is not None and float(width) < 1
        except (TypeError, ValueError):
            below_one = False
        skipped.append("window width below 1" if below_one else "window element present but empty")
    return tuple(skipped)


def reset_dicom_voi_summary() -> None:
    """Forgets the DICOM files decoded so far (the trainer calls it as a run starts)."""
    _VOI_DECODED.clear()


def dicom_voi_summary() -> dict[str, Any]:
    """Over the distinct grayscale DICOM files decoded in this process since the last
    reset: how many took each VOI transform, and how many fell back past each unusable
    one (`{"images": n, "transform": {...}, "fallbacks": {...}}`)."""
    transforms: dict[str, int] = {}
    fallbacks: dict[str, int] = {}
    for transform, skipped in _VOI_DECODED.values():
        transforms[transform] = transforms.get(transform, 0) + 1
        for reason in skipped:
            fallbacks[reason] = fallbacks.get(reason, 0) + 1
    return {"images": len(_VOI_DECODED), "transform": transforms, "fallbacks": fallbacks}


def voi_transform(ds: Any) -> str:
    """Which VOI transform `_display_gray` applies: "lut", "window" or "min-max",
    the first usable one in that order (`usable_voi_lut`, `usable_window`)."""
    if usable_voi_lut(ds) is not None:
        return "lut"
    return "window" if usable_window(ds) is not None else "min-max"


def _frame_attributes(ds: Any) -> None:
    """Copies frame 0's rescale and window from the functional groups of an
    enhanced multi-frame object to the top level, where the LUT functions look."""
    for groups_keyword in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        groups = ds.get(groups_keyword)
        if not groups:
            continue
        for sequence, keywords in (
            ("PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept")),
            # The Frame VOI LUT With LUT macro may carry a VOI LUT sequence of its own.
            ("FrameVOILUTSequence", ("WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence")),
        ):
            items = groups[0].get(sequence)
            if not items:
                continue
            for keyword in keywords:
                if keyword in items[0] and keyword not in ds:
                    setattr(ds, keyword, items[0][keyword].value)


def _display_gray(frame: np.ndarray, ds: Any) -> np.ndarray:
    """Modality LUT -> VOI (`voi_transform`: LUT, window or min-max) onto 0..255
    -> inversion for MONOCHROME1 or Presentation LUT Shape INVERSE."""
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_modality_lut, apply_windowing

    _frame_attributes(ds)
    values = np.asarray(apply_modality_lut(frame, ds), dtype=np.float64)
    transform = voi_transform(ds)
    if transform == "lut":
        display = _apply_voi_lut(values, usable_voi_lut(ds), ds)
    elif transform == "window":
        # pydicom maps the window onto the range implied by BitsStored,
        # PixelRepresentation and the rescale; a stand-in with 8 unsigned bits
        # and no rescale makes that range 0..255.
        center, width = usable_window(ds)
        window = Dataset()
        window.PhotometricInterpretation = "MONOCHROME2"
        window.BitsStored = 8
        window.PixelRepresentation = 0
        window.WindowCenter = center
        window.WindowWidth = width
        function = _first_value(ds.get("VOILUTFunction"))
        if function is not None:
            window.VOILUTFunction = str(function)
        display = apply_windowing(values, window, index=0)
    else:
        low, high = float(values.min()), float(values.max())
        display = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    shape = str(_first_value(ds.get("PresentationLUTShape")) or "").strip().upper()
    # MONOCHROME1 and a Presentation LUT Shape INVERSE both mean "display inverted"
    # (DX objects pair them); either inverts, once.
    if photometric == "MONOCHROME1" or shape == "INVERSE":
        display = 255.0 - display
    return np.rint(np.clip(display, 0.0, 255.0)).astype(np.uint8)


def _apply_voi_lut(values: np.ndarray, item: Any, ds: Any) -> np.ndarray:
    """A VOI LUT (PS3.3 C.11.2.1.1) onto 0..255.

    Done here rather than with pydicom's `apply_voi`, which indexes with an
    array of the LUT's entry type, so an 8-bit LUT of more than 256 entries
    would wrap around, and which warns on the float output of a rescale.
    """
    from pydicom.uid import ExplicitVRBigEndian

    entries, first, bits = (int(v) for v in item.LUTDescriptor)
    entries = entries or 65536  # 0 stands for 2**16 entries
    data = item.LUTData
    if isinstance(data, bytes):  # OW: 16-bit words in the data set's byte order
        big = ds.file_meta.get("TransferSyntaxUID") == ExplicitVRBigEndian
        table = np.frombuffer(data, dtype=">u2" if big else "<u2", count=entries)
    else:
        table = np.asarray([data] if isinstance(data, int) else list(data), np.int64)  # US: one value or many
    if len(table) < entries:
        raise ValueError(f"VOI LUT has {len(table)} entries, its descriptor says {entries}")
    index = np.clip(np.rint(values) - first, 0, entries - 1).astype(np.int64)
    return table[index].astype(np.float64) * (255.0 / (2**bits - 1))


# ---------------------------------------------------------------------------
# Reader checks


def check_image(
    image_path: str | Path,
    mode: str,
    *,
    file: str | Path | None = None,
    record: str | int | None = None,
    field: str = "image",
) -> None:
    """Raises DataError when the image fails the `mode` check.

    `file`/`record`/`field` locate the reference (the annotation that names
    the image); the message names the image path itself.
    """
    if mode not in IMAGE_CHECKS:
        raise ValueError(f"unknown image check {mode!r}; valid: {', '.join(IMAGE_CHECKS)}")
    if mode == "none":
        return
    image_path = Path(image_path)
    where = {"file": file if file is not None else image_path, "record": record, "field": field}
    if not image_path.is_file():
        raise DataError(f"missing image file {image_path}", **where)
    if image_path.stat().st_size == 0:
        raise DataError(f"empty image file {image_path}", **where)
    if mode == "decode":
        try:
            load_pixels(image_path)
        except DataError as err:
            raise DataError(f"unreadable image {image_path}: {err.message}", **where) from None


# ---------------------------------------------------------------------------
# tf.data entry point


def _numpy_decode(raw: Any, path: Any) -> np.ndarray:
    # Graph mode passes bytes, eager mode 0-d object arrays of bytes.
    raw, path = (value.item() if isinstance(value, np.ndarray) else value for value in (raw, path))
    name = path.decode("utf-8", "surrogateescape")
    try:
        return decode_bytes(raw, name)
    except DataError:
        raise  # a ValueError: tf.numpy_function reports it as InvalidArgumentError
    except Exception as err:
        raise DataError(f"unreadable image: {err}", file=name) from None


def decode_pixels(path: Any) -> Any:
    """uint8 (height, width, 3) tensor of the image file at scalar string `path`.

    Same values as `load_pixels`: 8-bit PNG and JPEG through TensorFlow's
    native decoders, everything else (16-bit PNG, DICOM, found by its marker
    or a `.dcm` name, BMP, GIF, ...) through `load_pixels` in
    `tf.numpy_function`.
    """
    import tensorflow as tf

    path = tf.convert_to_tensor(path, tf.string)
    raw = tf.io.read_file(path)
    # substr clips at the end of a short file; the padding keeps every
    # offset below valid, so short files fall through to load_pixels.
    head = tf.strings.join([tf.strings.substr(raw, 0, _HEAD), tf.constant(b"\0" * _HEAD)])
    dicom = tf.logical_or(
        tf.equal(tf.strings.substr(head, DICOM_MAGIC_OFFSET, len(DICOM_MAGIC)), DICOM_MAGIC),
        tf.strings.regex_full_match(tf.strings.lower(path), r".*\.dcm"),
    )
    png = tf.equal(tf.strings.substr(head, 0, len(PNG_MAGIC)), PNG_MAGIC)
    png16 = tf.equal(tf.strings.substr(head, 24, 1), b"\x10")  # IHDR bit depth
    jpeg = tf.equal(tf.strings.substr(head, 0, len(JPEG_MAGIC)), JPEG_MAGIC)

    def from_python():
        pixels = tf.numpy_function(_numpy_decode, [raw, path], tf.uint8, name="load_pixels")
        pixels.set_shape([None, None, 3])
        return pixels

    def from_png():
        # 16-bit PNGs need their sBIT chunk with the samples (module docstring).
        return tf.cond(png16, from_python, lambda: tf.io.decode_png(raw, channels=3, dtype=tf.uint8))

    def from_jpeg():
        return tf.io.decode_jpeg(raw, channels=3, dct_method="INTEGER_ACCURATE")

    def raster():
        return tf.cond(png, from_png, lambda: tf.cond(jpeg, from_jpeg, from_python))

    image = tf.cond(dicom, from_python, raster)
    image.set_shape([None, None, 3])
    return image
