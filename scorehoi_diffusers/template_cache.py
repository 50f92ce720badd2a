"""On-disk cache of object templates' signed-distance grids, keyed by a hash of the mesh and the build options.

An exact grid costs seconds to minutes per mesh; the cache makes every later run with the same mesh load it in
milliseconds. The folder is, in order: the ``cache_dir`` argument, the environment variable ``SCOREHOI_CACHE``,
``$XDG_CACHE_HOME/scorehoi_diffusers/templates``, ``~/.cache/scorehoi_diffusers/templates``. Deleting it is
always safe.

Each grid is one ``.npz`` file, read with ``allow_pickle=False`` and written atomically (a temporary file renamed
into place), so processes sharing the folder never see a partial file. A file that cannot be read or does not
hold the expected arrays is ignored and rebuilt.
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import trimesh
from diffusers.utils import logging

from .atomic_files import atomic_write_bytes
from .signed_distance_grid import signed_distance_grid

__all__ = ["CACHE_ENV", "cached_signed_distance_grid", "default_cache_dir"]

logger = logging.get_logger(__name__)

CACHE_ENV = "SCOREHOI_CACHE"
# Part of every key: bump it whenever signed_distance_grid's result changes, so older files are not reused.
_GRID_VERSION = 2


def default_cache_dir() -> Path:
    """``$SCOREHOI_CACHE``, else ``$XDG_CACHE_HOME/scorehoi_diffusers/templates`` (``~/.cache`` by default)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scorehoi_diffusers" / "templates"


def cached_signed_distance_grid(
    mesh: trimesh.Trimesh, resolution: int, padding: float, cache_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~scorehoi_diffusers.signed_distance_grid.signed_distance_grid`, read from the cache when present.

    Args:
        mesh (`trimesh.Trimesh`): the surface, in metres; its vertices and faces are the key.
        resolution (`int`): nodes per axis, R.
        padding (`float`): the box's padding (see `signed_distance_grid`).
        cache_dir (`str` or `os.PathLike`, *optional*): the cache folder; defaults to :func:`default_cache_dir`.

    Returns:
        grid `(R, R, R)` float64 and bounds `(2, 3)`. A folder that cannot be written logs a warning and the
        grid is still returned.
    """
    folder = default_cache_dir() if cache_dir is None else Path(cache_dir)
    path = folder / f"sdf-{_key(mesh, resolution, padding)}.npz"
    cached = _read(path, resolution)
    if cached is not None:
        return cached
    grid, bounds = signed_distance_grid(mesh, resolution, padding)
    buffer = io.BytesIO()
    np.savez(buffer, grid=grid, bounds=bounds)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as error:
        logger.warning(f"Could not cache the signed-distance grid in {str(folder)!r} ({error}); set {CACHE_ENV} "
                       "to a writable folder to avoid recomputing it next time.")
    return grid, bounds


def _key(mesh: trimesh.Trimesh, resolution: int, padding: float) -> str:
    digest = hashlib.sha256(f"v{_GRID_VERSION} r{int(resolution)} p{float(padding)!r}".encode())
    digest.update(np.ascontiguousarray(mesh.vertices, dtype="<f8").tobytes())
    digest.update(np.ascontiguousarray(mesh.faces, dtype="<i8").tobytes())
    return digest.hexdigest()[:32]


def _read(path: Path, resolution: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached grid and bounds, or `None` if the file is missing, unreadable, or not a grid of this size."""
    try:
        with np.load(path, allow_pickle=False) as data:
            grid, bounds = data["grid"], data["bounds"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        logger.info(f"Ignoring unreadable cache file {str(path)!r} ({error}); rebuilding it.")
        return None
    valid = (
        grid.shape == (resolution,) * 3
        and bounds.shape == (2, 3)
        and grid.dtype == bounds.dtype == np.float64
        and np.isfinite(grid).all()
        and np.isfinite(bounds).all()
    )
    if not valid:
        logger.info(f"Ignoring cache file {str(path)!r}: it does not hold a {resolution}^3 grid; rebuilding it.")
        return None
    return grid, bounds
