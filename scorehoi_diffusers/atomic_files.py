"""Files written atomically, with the permissions a plain ``open`` would give them.

A reader (or a concurrent process) sees the old file or the whole new one, never a part: the data goes to a
temporary file beside the destination, which is then renamed over it in one step. ``tempfile.mkstemp`` creates
that file private (mode 0600) whatever the umask, so the mode is set to what ``open`` would have given.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "permissions"]


def permissions(mode: int) -> int:
    """``mode`` less the process's umask: what ``open`` (0o666) or ``mkdir`` (0o777) would have given."""
    umask = os.umask(0)  # the only way to read the umask is to set it; put it back at once
    os.umask(umask)
    return mode & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically; missing parent folders are created.

    Returns:
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, permissions(0o666))
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path
