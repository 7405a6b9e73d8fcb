"""Imports every dataset module so that each registers itself in DATASETS."""

from medcap.data import iu_xray, medicat, mimic  # noqa: F401
