"""A manifest: the list of photos that ``scorehoi reconstruct`` reconstructs in one process.

A manifest is a JSON or CSV file. JSON holds a list of photo entries (or ``{"photos": [...]}``); CSV has a
header row naming the same keys as columns. Per photo:

* ``image`` (required), ``human_mask``, ``object_mask``: file paths, relative to the manifest's folder unless
  absolute. Without ``human_mask`` the person detector finds the person; without ``object_mask`` the object is
  cut from ``object_box`` (then required).
* ``object_box``: ``[x, y, w, h]`` around the object (in CSV: four numbers separated by spaces).
* ``person_box``: ``[x, y, w, h]`` around the person to reconstruct, where the photo shows several.
* ``object``: shipped object name, dataset object name or mesh path (default: the command's ``--object``).
* ``bbox``: ``[x, y, w, h]`` box around person and object (in CSV: four numbers separated by spaces); default:
  around both masks.
* ``focal``: focal length in pixels (default: the command's ``--focal``, else 1.2 x the longer side).
* ``keypoints``: path of a JSON file of the person's 33 BlazePose landmarks, ``[[u, v, visibility], ...]`` in the
  image's pixels (relative to the manifest's folder unless absolute); they drive the keypoint guidance term.
* ``name``: the result folder's name (default: the image's file name without its suffix).

Only the file is read here; pictures, masks, boxes and focal lengths are checked where they are used.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAMES = ("manifest.json", "manifest.csv")
REQUIRED_KEYS = ("image",)
FILE_KEYS = ("image", "human_mask", "object_mask")
OPTIONAL_KEYS = ("human_mask", "object_mask", "object", "bbox", "object_box", "person_box", "focal", "keypoints",
                 "name")


@dataclass(frozen=True)
class PhotoSpec:
    """One photo to reconstruct: its files, object and camera, as a manifest or the command line gives them."""

    name: str
    image: str
    human_mask: str | None = None
    object_mask: str | None = None
    object: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    focal: float | None = None
    object_box: tuple[float, float, float, float] | None = None
    person_box: tuple[float, float, float, float] | None = None
    keypoints: str | None = None


def manifest_in_folder(folder: os.PathLike) -> Path:
    """The manifest file inside ``folder`` (``manifest.json`` or ``manifest.csv``).

    Raises:
        ValueError: the folder holds neither, or both.
    """
    found = [Path(folder) / name for name in MANIFEST_NAMES if (Path(folder) / name).is_file()]
    if len(found) != 1:
        what = "neither" if not found else "both"
        raise ValueError(f"{folder} holds {what} of {' and '.join(MANIFEST_NAMES)}; give exactly one manifest "
                         "listing its photos (keys: image, human_mask, object_mask, object_box, person_box, object, "
                         "bbox, focal, keypoints).")
    return found[0]


def read_manifest(path: os.PathLike) -> list[PhotoSpec]:
    """The photos listed in a JSON or CSV manifest, with paths made relative to the manifest's folder.

    Args:
        path: the ``.json`` or ``.csv`` file.

    Returns:
        One :class:`PhotoSpec` per entry, in file order.

    Raises:
        ValueError: the file is unreadable, not JSON/CSV, empty, or an entry lacks a required key, has an
            unknown key, or a malformed ``bbox``/``focal``; the message names the file and the entry.
    """
    path = Path(path)
    if path.suffix.lower() not in (".json", ".csv"):
        raise ValueError(f"{path}: a manifest is a .json or .csv file.")
    try:
        text = path.read_text(encoding="utf-8")
        rows = _json_rows(text) if path.suffix.lower() == ".json" else list(csv.DictReader(text.splitlines()))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path} is not a readable manifest ({error}).") from error
    if not rows:
        raise ValueError(f"{path} lists no photos; give one entry per photo.")
    return [_photo_spec(row, path, index) for index, row in enumerate(rows)]


def _json_rows(text: str) -> list:
    data = json.loads(text)
    if isinstance(data, dict) and "photos" in data:
        data = data["photos"]
    if not isinstance(data, list):
        raise ValueError('expected a list of photo entries or {"photos": [...]}')
    return data


def _photo_spec(row, path: Path, index: int) -> PhotoSpec:
    where = f"{path} entry {index}"
    if not isinstance(row, dict):
        raise ValueError(f"{where} is not an object with keys {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}.")
    row = {key: value for key, value in row.items() if value not in (None, "")}  # CSV leaves empty cells ""
    missing = [key for key in REQUIRED_KEYS if key not in row]
    unknown = sorted(set(row) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if missing or unknown:
        problem = f"lacks {missing}" if missing else f"has unknown keys {unknown}"
        raise ValueError(f"{where} {problem}; an entry has {', '.join(REQUIRED_KEYS)} and optionally "
                         f"{', '.join(OPTIONAL_KEYS)}.")
    if "object_mask" not in row and "object_box" not in row:
        raise ValueError(f"{where} lacks ['object_mask'] and has no object_box; give the object's mask or a box "
                         "around it.")
    files = {key: str(path.parent / str(row[key])) for key in FILE_KEYS if key in row}
    return PhotoSpec(
        name=str(row.get("name", Path(files["image"]).stem)),
        object=str(row["object"]) if "object" in row else None,
        bbox=_bbox(row.get("bbox"), where),
        object_box=_bbox(row.get("object_box"), where, "object_box"),
        person_box=_bbox(row.get("person_box"), where, "person_box"),
        focal=_number(row["focal"], f"{where} focal") if "focal" in row else None,
        keypoints=str(path.parent / str(row["keypoints"])) if "keypoints" in row else None,
        **files,
    )


def _bbox(value, where: str, key: str = "bbox") -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    parts = value.split() if isinstance(value, str) else value
    if not isinstance(parts, (list, tuple)) or len(parts) != 4:
        raise ValueError(f"{where} {key} must be four numbers x, y, w, h, got {value!r}.")
    return tuple(_number(part, f"{where} {key}") for part in parts)


def _number(value, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where} must be a number, got {value!r}.") from error
