"""BEHAVE and InterCap object meshes, each in the frame that the datasets' object poses refer to.

An annotation's ``obj_param`` (rotation ``R_o``, translation ``t_o``) places the object as
``p = R_o @ v + t_o``; ``v`` must be in the right frame, or every posed object is off by a rotated offset.
Two sources of meshes are read, told apart by what ``object_root`` holds:

* **CONTHO's object models** (``base_data/object_models/{behave,intercap}``): an ``_info.json`` mapping
  entries to ``{"path": mesh file, "kps": 64 points}``; an object's name is its mesh file's stem. The
  annotations' poses apply to these meshes as they are. ``object_root`` may be the dataset's folder (holding
  ``_info.json``) or its parent ``object_models`` (holding ``behave/_info.json`` and ``intercap/_info.json``).
  The paths in ``_info.json`` are relative to CONTHO's own checkout (``data/base_data/object_models/...``);
  they are resolved by their longest tail that exists under the folder of ``_info.json``.
* **BEHAVE's raw** ``objects/`` **folder** (``objects/NAME/NAME.obj`` with a simplified
  ``objects/NAME/NAME_fXXXX.ply``): the meshes are *not* centred, while BEHAVE's poses apply to the template
  centred at the vertex mean of the simplified ``.ply`` (every vertex as stored, none merged). The template is
  therefore ``NAME.obj`` translated by minus that mean.

Any other folder (e.g. InterCap's raw meshes) is read by :func:`~scorehoi_diffusers.objects.load_object`, in
the frame of its files. InterCap's objects are named ``"01"`` .. ``"10"``, as in CONTHO's object models.
"""
from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import trimesh
from diffusers.utils import logging

from ..objects import ObjectTemplate, load_object

logger = logging.get_logger(__name__)

PathLike = str | os.PathLike

CONTHO_INFO_FILE = "_info.json"


def find_contho_info(object_root: PathLike, dataset: str) -> Path | None:
    """CONTHO's ``_info.json`` for ``dataset`` under ``object_root`` (itself or ``{dataset}/``), else ``None``."""
    root = Path(object_root).expanduser()
    for candidate in (root / CONTHO_INFO_FILE, root / dataset / CONTHO_INFO_FILE):
        if candidate.is_file():
            return candidate
    return None


def contho_mesh_paths(info_path: PathLike) -> dict[str, Path]:
    """Object name -> mesh file of a CONTHO ``_info.json`` (name = the mesh file's stem).

    Raises:
        ValueError: the file is not a JSON object of entries with a ``"path"``, or a mesh is missing.
    """
    info_path = Path(info_path)
    try:
        with open(info_path, encoding="utf-8") as handle:
            entries = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"Object model index {str(info_path)!r} is not valid JSON: {error}") from error
    if not isinstance(entries, dict):
        raise ValueError(f"Object model index {str(info_path)!r} must map entries to {{'path': ...}}.")
    meshes = {}
    for key, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise ValueError(f"Object model index {str(info_path)!r}: entry {key!r} lacks a string 'path'.")
        recorded = Path(entry["path"])
        meshes[recorded.stem] = _resolve_recorded_path(recorded, info_path)
    return meshes


def _resolve_recorded_path(recorded: Path, info_path: Path) -> Path:
    """The file a path recorded in ``_info.json`` names: itself when it exists, else its longest existing tail."""
    if recorded.is_absolute() and recorded.is_file():
        return recorded
    parts = recorded.parts[1:] if recorded.is_absolute() else recorded.parts
    for start in range(len(parts)):
        candidate = info_path.parent.joinpath(*parts[start:])
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"Object model index {str(info_path)!r} names {str(recorded)!r}, which is not found under "
        f"{str(info_path.parent)!r}; keep CONTHO's object_models folder as downloaded."
    )


def behave_template_centre(object_root: PathLike, name: str) -> tuple[Path, np.ndarray] | None:
    """``(mesh, centre)`` of a raw BEHAVE object, or ``None`` when ``object_root`` is not in BEHAVE's layout.

    BEHAVE's layout is ``{object_root}/NAME/NAME.obj`` next to one simplified ``NAME_fXXXX.ply``; the centre
    ``(3,)`` is the vertex mean of the simplified mesh.

    Raises:
        ValueError: several simplified meshes, so the centre would be ambiguous.
    """
    folder = Path(object_root).expanduser() / name
    mesh_path = folder / f"{name}.obj"
    if not mesh_path.is_file():
        return None
    simplified = sorted(p for p in folder.glob(f"{name}_f*.ply") if p.stem[len(name) + 2:].isdigit())
    if not simplified:
        return None
    if len(simplified) > 1:
        raise ValueError(
            f"BEHAVE object {name!r} has several simplified meshes ({', '.join(p.name for p in simplified)}); "
            "its poses refer to the one released with it: keep only that one in the folder."
        )
    vertices = np.asarray(trimesh.load(str(simplified[0]), process=False).vertices, dtype=np.float64)
    if vertices.ndim != 2 or len(vertices) == 0 or not np.isfinite(vertices).all():
        raise ValueError(f"Simplified BEHAVE mesh {str(simplified[0])!r} has no finite vertices.")
    return mesh_path, vertices.mean(axis=0)


def load_dataset_object(
    name: str, object_root: PathLike | None, dataset: str = "behave", **options
) -> ObjectTemplate:
    """The template of a BEHAVE / InterCap object, in the frame its pose annotations refer to.

    Args:
        name: the annotation's object name (e.g. ``"backpack"``, ``"01"``).
        object_root: CONTHO's object models, BEHAVE's raw ``objects/`` folder or another folder of meshes (see
            the module docstring); ``None`` falls back to :func:`~scorehoi_diffusers.objects.load_object`.
        dataset: ``"behave"`` or ``"intercap"``: which of CONTHO's object model sets to read.
        **options: passed to :meth:`ObjectTemplate.from_trimesh` (e.g. ``sdf_resolution=32``).

    Returns:
        The :class:`ObjectTemplate`, cached per (mesh file, modification time, centre, options).

    Raises:
        FileNotFoundError: CONTHO's index is there but lacks the object, or a mesh file is missing.
        ValueError: an unreadable index or mesh.
    """
    if object_root is not None:
        info_path = find_contho_info(object_root, dataset)
        if info_path is not None:
            meshes = contho_mesh_paths(info_path)
            if name not in meshes:
                raise FileNotFoundError(
                    f"Object {name!r} is not in CONTHO's object model index {str(info_path)!r}, which has "
                    f"{sorted(meshes)}; check the annotation's obj_param.name or pass the matching `object_root`."
                )
            return _load_translated(meshes[name], (0.0, 0.0, 0.0), name, options)
        behave = behave_template_centre(object_root, name)
        if behave is not None:
            mesh_path, centre = behave
            return _load_translated(mesh_path, tuple(float(-c) for c in centre), name, options)
    return load_object(name, object_root=object_root, **options)


def load_dataset_objects(
    names: Iterable[str], object_root: PathLike | None, dataset: str = "behave", **options
) -> dict[str, ObjectTemplate]:
    """:func:`load_dataset_object` for each distinct name, keyed by name."""
    return {name: load_dataset_object(name, object_root, dataset, **options) for name in sorted(set(names))}


def _load_translated(path: Path, offset: tuple[float, float, float], name: str, options: dict) -> ObjectTemplate:
    stat = path.stat()
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size, offset, name, tuple(sorted(options.items())))


@functools.lru_cache(maxsize=32)
def _load_cached(path: str, mtime_ns: int, size: int, offset: tuple, name: str, options: tuple) -> ObjectTemplate:
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as error:  # trimesh raises many types for unreadable files
        raise ValueError(f"Could not read object mesh {path!r}: {error}") from error
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError(f"Object mesh {path!r} has no faces (a point cloud or an empty file?).")
    if any(offset):
        logger.info(f"Object {name!r}: {path} translated by {offset} (BEHAVE's template centre).")
        mesh.apply_translation(offset)
    return ObjectTemplate.from_trimesh(mesh, name=name, **dict(options))
