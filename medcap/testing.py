"""Shared test harness, in the style of keras-hub's TestCase.

* `run_layer_test`: build, call, output shape, `get_config` round-trip, and one
  `fit` step on a tiny model wrapped around the layer.
* `run_model_saving_test`: `.keras` save/load gives allclose outputs.
* `block_network` / the `no_network` fixture: socket connections fail, so a test
  that reaches for the internet fails loudly instead of hanging or passing by luck.
* `write_dicom`: a DICOM file of given pixels and attributes, for reader tests.
* `shared_path`: files in `../shared` (developer and CI machines only); skips
  the test with a clear message when absent, as users will not have them.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

#: `../shared` beside the checkout; MEDCAP_SHARED_DIR overrides.
SHARED_DIR = Path(os.environ.get("MEDCAP_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))


#: Any syntactically valid instance UID, for DICOM files written by tests.
DICOM_TEST_UID = "1.2.826.0.1.3680043.8.498.1"


def write_dicom(
    path: str | Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    frames: bool = False,
    syntax: str | None = None,
    pixel_data: bytes | None = None,
    preamble: bool = True,
    **attributes: Any,
) -> str:
    """A Secondary Capture DICOM file of `pixels` (rows, cols[, 3]), or of
    (frames, rows, cols) with `frames=True`, written with pydicom the way
    scanners write them (128-byte preamble, "DICM", file meta). Keyword
    `attributes` are set on the data set (WindowCenter=..., RescaleSlope=...);
    `pixel_data` replaces the native bytes with encapsulated ones for `syntax`
    (default Explicit VR Little Endian); `preamble=False` writes a bare data set."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    syntax = syntax or ExplicitVRLittleEndian
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = DICOM_TEST_UID
    meta.TransferSyntaxUID = syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128 if preamble else None)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = SecondaryCaptureImageStorage, DICOM_TEST_UID, "OT"
    colour = photometric in ("RGB", "YBR_FULL")
    shape = pixels.shape[1:] if frames else pixels.shape
    ds.Rows, ds.Columns = shape[:2]
    if frames:
        ds.NumberOfFrames = pixels.shape[0]
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(pixels.dtype.kind == "i")
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    if pixel_data is None:
        ds.PixelData = pixels.tobytes()
    else:
        ds.PixelData = pixel_data
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:  # a bare data set: no preamble, no "DICM"
        pydicom.dcmwrite(path, ds, enforce_file_format=False)
    return str(path)


def shared_path(relative: str) -> Path:
    """Path of a file under ../shared, or skip the calling test when absent."""
    path = SHARED_DIR / relative
    if not path.exists():
        import pytest

        pytest.skip(f"{path} is absent: ../shared is only on developer and CI machines")
    return path


class NetworkAccessError(RuntimeError):
    """Raised when a test tries to open a network connection."""


_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def _is_local(address: Any) -> bool:
    if isinstance(address, (tuple, list)) and address:
        host = str(address[0])
        return host in _LOCAL_HOSTS or host.startswith("127.")
    return isinstance(address, (str, bytes))  # AF_UNIX paths


@contextlib.contextmanager
def block_network(allow_loopback: bool = True) -> Iterator[None]:
    """Makes non-loopback socket connections raise NetworkAccessError.

    Loopback stays open: multi-worker tests and the METEOR jar's pipes are local.
    """
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo

    def guard(address: Any) -> None:
        if not (allow_loopback and _is_local(address)):
            raise NetworkAccessError(f"network access attempted in a test: {address!r}")

    def connect(self, address):  # noqa: ANN001
        guard(address)
        return original_connect(self, address)

    def connect_ex(self, address):  # noqa: ANN001
        guard(address)
        return original_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):  # noqa: ANN001
        if host is not None and not (allow_loopback and _is_local((host,))):
            raise NetworkAccessError(f"DNS lookup attempted in a test: {host!r}")
        return original_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.socket.connect = original_connect
        socket.socket.connect_ex = original_connect_ex
        socket.getaddrinfo = original_getaddrinfo


def _as_numpy(tree: Any) -> Any:
    import keras

    return keras.tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), tree)


def _assert_tree_allclose(a: Any, b: Any, atol: float, rtol: float) -> None:
    import keras

    flat_a, flat_b = keras.tree.flatten(_as_numpy(a)), keras.tree.flatten(_as_numpy(b))
    assert len(flat_a) == len(flat_b), f"output structure differs: {len(flat_a)} vs {len(flat_b)} tensors"
    for x, y in zip(flat_a, flat_b):
        np.testing.assert_allclose(x, y, atol=atol, rtol=rtol)


def run_layer_test(
    layer_cls: type,
    init_kwargs: dict[str, Any],
    input_data: Any,
    expected_output_shape: Any,
    *,
    expected_num_trainable_weights: int | None = None,
    run_training_check: bool = True,
    loss_fn: Callable[[Any], Any] | None = None,
) -> Any:
    """Checks a layer: build + call, output shape(s), config round-trip, a fit step.

    `expected_output_shape` is a tuple, or a structure of tuples matching the
    output; `None` entries match any size. Returns the layer's output.
    """
    import keras

    layer = layer_cls(**init_kwargs)
    output = layer(input_data)

    def check_shape(tensor: Any, shape: tuple) -> None:
        actual = tuple(keras.ops.shape(tensor))
        assert len(actual) == len(shape), f"rank: expected {shape}, got {actual}"
        for a, e in zip(actual, shape):
            assert e is None or a == e, f"shape: expected {shape}, got {actual}"

    def is_shape(value: Any) -> bool:
        return isinstance(value, tuple) and all(isinstance(d, (int, type(None))) for d in value)

    def walk(tensor: Any, expected: Any) -> None:
        if is_shape(expected):
            check_shape(tensor, expected)
        elif isinstance(expected, dict):
            assert set(expected) <= set(tensor), f"outputs {sorted(tensor)} lack {sorted(set(expected) - set(tensor))}"
            for key, value in expected.items():
                walk(tensor[key], value)
        else:
            assert len(tensor) == len(expected), f"expected {len(expected)} outputs, got {len(tensor)}"
            for t, e in zip(tensor, expected):
                walk(t, e)

    walk(output, expected_output_shape)

    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, (
            f"trainable weights: expected {expected_num_trainable_weights}, got {len(layer.trainable_weights)}"
        )

    # get_config must mirror the constructor: a clone built from it with the
    # same weights gives the same outputs.
    config = layer.get_config()
    for key, value in init_kwargs.items():
        if isinstance(value, (int, float, str, bool, type(None), tuple, list)):
            got = config.get(key)
            got = tuple(got) if isinstance(got, list) else got
            want = tuple(value) if isinstance(value, list) else value
            assert got == want, f"get_config()[{key!r}] = {got!r}, expected {want!r}"
    clone = layer_cls.from_config(config)
    clone(input_data)
    clone.set_weights(layer.get_weights())
    _assert_tree_allclose(layer(input_data), clone(input_data), atol=1e-6, rtol=1e-6)

    if run_training_check and layer.trainable_weights:
        _fit_one_step(layer, input_data, loss_fn)
    return output


def _fit_one_step(layer: Any, input_data: Any, loss_fn: Callable[[Any], Any] | None) -> None:
    """One optimizer step on sum(outputs) must change some trainable weight."""
    import keras
    import tensorflow as tf

    before = [np.array(w) for w in layer.trainable_weights]
    optimizer = keras.optimizers.SGD(learning_rate=0.1)
    with tf.GradientTape() as tape:
        output = layer(input_data, training=True)
        if loss_fn is not None:
            loss = loss_fn(output)
        else:
            loss = tf.add_n([tf.reduce_mean(tf.cast(t, "float32")) for t in keras.tree.flatten(output)])
    grads = tape.gradient(loss, layer.trainable_weights)
    assert any(g is not None for g in grads), "no gradient reaches any trainable weight"
    optimizer.apply_gradients([(g, w) for g, w in zip(grads, layer.trainable_weights) if g is not None])
    after = [np.array(w) for w in layer.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after)), "one training step changed no weight"


def run_model_saving_test(model: Any, input_data: Any, tmp_path: Path, *, atol: float = 1e-6) -> Any:
    """Saves `model` to `.keras`, reloads it and checks outputs are allclose.

    Returns the reloaded model.
    """
    import keras

    path = Path(tmp_path) / "model.keras"
    expected = model(input_data, training=False)
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(model), f"reloaded as {type(restored).__name__}, expected {type(model).__name__}"
    _assert_tree_allclose(expected, restored(input_data, training=False), atol=atol, rtol=atol)
    return restored
