"""Name -> builder registries for models, datasets and experiments.

A registry is a plain mapping with good errors: asking for an unknown name
lists every valid one, so a typo in a config or on the command line is fixed
at once instead of being debugged.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from medcap.errors import UnknownNameError as UnknownNameError  # defined low, re-exported here

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of builders.

    Example:
        MODELS = Registry("model")

        @MODELS.register("model80")
        class Model80Task: ...

        MODELS.get("model80")
    """

    def __init__(self, kind: str, loader: Callable[[], None] | None = None):
        self.kind = kind
        self._entries: dict[str, T] = {}
        # Entries live in modules that import heavy dependencies; the loader
        # imports them on first lookup so `import medcap.registry` stays cheap.
        self._loader = loader
        self._loaded = loader is None

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            assert self._loader is not None
            self._loader()

    def register(self, name: str, obj: T | None = None, *, override: bool = False):
        """Registers `obj` under `name`; usable as a decorator when obj is None."""

        def add(entry: T) -> T:
            if name in self._entries and not override and self._entries[name] is not entry:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = entry
            return entry

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        self._ensure_loaded()
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries)) or "(none registered)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid names: {valid}") from None

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


#: The modules that register each registry's entries, imported by name on the
#: first lookup. Named by string, not imported: the registry sits below the
#: readers and tasks that register themselves in it, and importing them here
#: would tie the bottom of the package to its top.
DATASET_MODULES: tuple[str, ...] = (
    "medcap.data.iu_xray",
    "medcap.data.medicat",
    "medcap.data.mimic",
    "medcap.data.chestxray14",  # paper 004: findings classification
    "medcap.data.chexpert",
    "medcap.data.mimic.labels",
    "medcap.data.labelled_images",
)
TASK_MODULES: tuple[str, ...] = (
    "medcap.models.model80_task",  # paper 000: Model-80 / Model-70
    "medcap.models.mtl_task",  # paper 001: cross-modal multi-task transformer
    "medcap.models.clip_task",  # paper 002: CLIP-style dual encoder
    "medcap.models.findings_task",  # paper 004: transfer-learning findings classifier
    "medcap.models.findings_to_report_task",  # paper 003: findings -> structured description -> report
)


def import_modules(names: tuple[str, ...]) -> Callable[[], None]:
    """A loader that imports each named module (each registers itself)."""

    def load() -> None:
        for name in names:
            importlib.import_module(name)

    return load


#: Dataset readers by name (`medicat`, `iu_xray`, `mimic`, `chestxray14`, ...); see medcap.data.base.
DATASETS: Registry = Registry("dataset", import_modules(DATASET_MODULES))
#: Model tasks by name (`model80`, ...): build the model and its data pipeline.
TASKS: Registry = Registry("model", import_modules(TASK_MODULES))
