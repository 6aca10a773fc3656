"""Writing and reading the project's files: text and JSON, written atomically.

Every file a run, a study or a data set keeps (run records, the scan cache, dataset.json, colour statistics,
manifests, bench.json) goes through `write_text`, so a crash leaves the old file or the new one, never half.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_text(path: str | Path, text: str) -> None:
    """Writes text under a temporary name in the same folder, then renames it into place.

    The rename is atomic, so a reader (or a run resumed after a crash) sees the old file or the new one,
    never half of one.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: str | Path, content) -> None:
    """Writes content as JSON, atomically (write_text)."""
    write_text(path, json.dumps(content, indent=1) + "\n")


def read_json(path: str | Path):
    """The JSON content of path."""
    return json.loads(Path(path).read_text())
