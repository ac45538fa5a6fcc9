"""User uploads: files kept in the shared uploads directory, outside every release."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class UploadError(ValueError):
    """The upload's name or size is not acceptable."""


class Uploads:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes

    def path_for(self, name: str) -> Path:
        if not NAME.fullmatch(name):
            raise UploadError(
                "upload names are 1-128 letters, digits, dots, dashes or underscores, "
                "starting with a letter or digit"
            )
        return self.folder / name

    def save(self, name: str, data: bytes) -> dict[str, Any]:
        target = self.path_for(name)
        if len(data) > self.max_bytes:
            raise UploadError(f"uploads are limited to {self.max_bytes} bytes")
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".upload-")
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        Path(temporary).replace(target)
        return {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def load(self, name: str) -> bytes:
        return self.path_for(name).read_bytes()

    def list(self) -> list[dict[str, Any]]:
        if not self.folder.is_dir():
            return []
        return [
            {"name": path.name, "bytes": path.stat().st_size}
            for path in sorted(self.folder.iterdir())
            if path.is_file() and NAME.fullmatch(path.name)
        ]
