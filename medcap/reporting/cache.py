"""An on-disk cache of LLM replies, keyed by (writer, model, prompt, generation settings).

A rerun, or a run resumed after a kill, sends only the prompts it has no
reply for: every reply is written to its own file the moment it arrives
(write to a temporary file, then an atomic rename), so a killed run loses
at most the requests in flight. The key is the SHA-256 of the canonical
JSON of the writer name, the model, the prompt (messages or text) and the
generation settings that change the reply (temperature, max tokens,
sampler, seed); change any and the prompt is sent again.

Layout: `<cache_dir>/<key[:2]>/<key>.json` holding `{"key", "writer",
"model", "reply"}`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def cache_key(writer: str, model: str, prompt: Any, settings: dict[str, Any]) -> str:
    blob = json.dumps({"writer": writer, "model": model, "prompt": prompt, "settings": settings}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """Replies on disk (module docstring)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))["reply"]
        except (json.JSONDecodeError, KeyError) as err:
            raise ValueError(f"{path}: a damaged cache entry ({err}); delete it to ask again") from None

    def put(self, key: str, reply: str, *, writer: str, model: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"key": key, "writer": writer, "model": model, "reply": reply}, f)
        os.replace(tmp, path)

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*/*.json"))
