"""Suite-wide fixtures: no network, quiet TensorFlow, deterministic seeds."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

from medcap.testing import block_network  # noqa: E402


@pytest.fixture(autouse=True)
def no_network():
    """Every test runs with non-loopback sockets disabled."""
    with block_network():
        yield
