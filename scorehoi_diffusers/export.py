"""Write one reconstruction to disk: overlay picture, before/after figure, .glb scene, a JSON record and the
SMPL-H ``.npz`` of :mod:`scorehoi_diffusers.smplh_export`.

Used by the ``scorehoi reconstruct`` and ``scorehoi demo`` commands. Every file is written atomically, and
:func:`result_folder` writes a whole result set as one unit, so concurrent runs never mix their files.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from .atomic_files import atomic_write_bytes, permissions
from .body import BodyModel
from .camera import resized_intrinsics
from .image_processor import area_resized, bounded_size
from .objects import ObjectTemplate
from .params import HOIParams
from .pipelines.pipeline_scorehoi import ScoreHOIPipelineOutput
from .rendering import BODY_COLOR, OBJECT_COLOR, MeshLayer, export_scene, multi_view_figure, overlay, save_png
from .smplh_export import smplh_arrays

# Longest side, in pixels, of a written overlay: ray casting needs about 90 bytes per pixel, so a 10000 x 8000
# photo drawn at full size would take 7 GB; larger photos are downscaled (keeping their aspect) before drawing.
OVERLAY_MAX_SIDE = 2048


def bounded_photo(image: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The photo downscaled to at most :data:`OVERLAY_MAX_SIDE` pixels on its longer side, and its camera.

    Smaller photos come back as they are; larger ones are downscaled by
    :func:`~scorehoi_diffusers.image_processor.area_resized`, which reads the array in place.

    Args:
        image: ``(H, W, 3)`` uint8 photo.
        intrinsics: ``(3, 3)`` pinhole matrix of the photo.

    Returns:
        ``(image (h, w, 3) uint8, intrinsics (3, 3))`` with ``max(h, w) <= OVERLAY_MAX_SIDE``.
    """
    height, width = image.shape[:2]
    size = bounded_size(height, width, OVERLAY_MAX_SIDE)
    if size is None:
        return image, intrinsics
    intrinsics = resized_intrinsics(np.asarray(intrinsics, dtype=np.float64), size[0] / width, size[1] / height)
    return area_resized(image, size), intrinsics


def bounded_overlay(image: np.ndarray, layers: list, intrinsics: np.ndarray) -> np.ndarray:
    """:func:`~scorehoi_diffusers.rendering.overlay` drawn on :func:`bounded_photo` of the photo.

    Args:
        image: ``(H, W, 3)`` uint8 photo.
        layers: meshes in the photo's camera space.
        intrinsics: ``(3, 3)`` pinhole matrix of the photo.

    Returns:
        ``(h, w, 3)`` uint8, with ``max(h, w) <= OVERLAY_MAX_SIDE``.
    """
    photo, camera = bounded_photo(image, intrinsics)
    return overlay(photo, layers, camera)


def _layers(body_vertices, body_faces, object_vertices, object_faces) -> list:
    return [
        MeshLayer(body_vertices, body_faces, color=BODY_COLOR, name="body"),
        MeshLayer(object_vertices, object_faces, color=OBJECT_COLOR, name="object"),
    ]


def _posed_meshes(body: BodyModel, template: ObjectTemplate, params: HOIParams):
    """Camera-space body and object vertices ``(B, V, 3)``, ``(B, Vo, 3)`` for ``params``."""
    with torch.no_grad():
        body_vertices = body(params, frame="camera").vertices
        object_vertices = template.pose(
            template.vertices.to(params.dtype), params.object_rotation,
            params.object_translation + params.camera_translation,
        )
    return body_vertices, object_vertices


def params_record(params: HOIParams, index: int) -> dict[str, list]:
    """Sample ``index`` of ``params`` as plain lists (rotation matrices, metres)."""
    return {f.name: getattr(params, f.name)[index].detach().cpu().tolist() for f in fields(params)}


def write_json(path: os.PathLike, record, indent: int = 1) -> Path:
    """Write ``record`` as JSON atomically: a reader sees the old file or the whole new one, never a part."""
    return atomic_write_bytes(path, (json.dumps(record, indent=indent) + "\n").encode())


def write_npz(path: os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` as an uncompressed ``.npz`` atomically (as :func:`write_json`)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


@contextlib.contextmanager
def result_folder(out_dir: os.PathLike, name: str, overwrite: bool = False) -> Iterator[Path]:
    """Write one result set as a unit into the folder ``out_dir/name``.

    Yields a fresh hidden folder next to the destination; when the block ends without error it is renamed into
    place in one step, so a reader (or a concurrent run) sees no result or a whole one. If the block fails the
    temporary folder is removed and nothing changes.

    Args:
        out_dir: parent folder (created).
        name: the result's folder name.
        overwrite: replace an existing ``out_dir/name``; without it an existing one is an error, also when
            another run finished it while this one was working.

    Raises:
        FileExistsError: ``out_dir/name`` exists and `overwrite` is `False`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = out / name
    if final.exists() and not overwrite:
        raise FileExistsError(f"{str(final)!r} already exists; pass overwrite=True to replace it.")
    temp = Path(tempfile.mkdtemp(dir=out, prefix=f".{name}.", suffix=".tmp"))
    os.chmod(temp, permissions(0o777))  # mkdtemp makes it private; the result should be as readable as mkdir's
    try:
        yield temp
        if overwrite and final.exists():
            # Move the old result aside first: a directory can only be renamed onto an empty one.
            old = Path(tempfile.mkdtemp(dir=out, prefix=f".{name}.", suffix=".old"))
            os.replace(final, old / name)
            os.replace(temp, final)
            shutil.rmtree(old)
        else:
            try:
                os.rename(temp, final)  # fails if another run put a non-empty result there meanwhile
            except OSError as error:
                raise FileExistsError(
                    f"{str(final)!r} was written by another run meanwhile; pass overwrite=True to replace it."
                ) from error
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def export_reconstruction(
    output: ScoreHOIPipelineOutput,
    index: int,
    body: BodyModel,
    template: ObjectTemplate,
    out_dir: os.PathLike,
    name: str,
    image: np.ndarray | None = None,
    intrinsics: np.ndarray | None = None,
    extra: dict | None = None,
) -> dict[str, Path]:
    """Write sample ``index`` of a ``output_type="pt"`` pipeline output.

    Args:
        output: the pipeline's output (tensors).
        index: which sample of the batch.
        body, template: the body model and object template used (to mesh the initial estimate).
        out_dir: folder to write into (created).
        name: file name stem.
        image: ``(H, W, 3)`` uint8 input picture, for the overlay (drawn at most :data:`OVERLAY_MAX_SIDE`
            pixels on its longer side).
        intrinsics: ``(3, 3)`` camera matrix of ``image``.
        extra: more fields for the JSON record (e.g. the input file names).

    Returns:
        Paths of the written files by kind: ``overlay`` (only with an image), ``figure``, ``scene``, ``json``
        (which holds ``intrinsics`` when given) and ``smplh`` (``{name}_smplh.npz``, keys in
        :mod:`scorehoi_diffusers.smplh_export`).
    """
    if not isinstance(output.params, HOIParams):
        raise TypeError("export_reconstruction needs a pipeline output with output_type='pt' or 'mesh'.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    body_faces = output.body_faces.cpu().numpy()
    object_faces = output.object_faces.cpu().numpy()
    after = _layers(output.body_vertices[index].cpu().numpy(), body_faces,
                    output.object_vertices[index].cpu().numpy(), object_faces)
    initial_body, initial_object = _posed_meshes(body, template, output.initial_params[index])
    before = _layers(initial_body[0].cpu().numpy(), body_faces, initial_object[0].cpu().numpy(), object_faces)
    paths: dict[str, Path] = {}
    photo, camera = image, intrinsics
    if image is not None and intrinsics is not None:
        photo, camera = bounded_photo(image, intrinsics)  # one bounded copy for the overlay and the figure
        paths["overlay"] = save_png(out / f"{name}_overlay.png", overlay(photo, after, camera))
    figure = multi_view_figure(
        [("before refinement", before), ("after refinement", after)], image=photo, intrinsics=camera
    )
    paths["figure"] = save_png(out / f"{name}_before_after.png", figure)
    paths["scene"] = export_scene(out / f"{name}.glb", after)
    contacts = output.contacts
    record = {
        "params": params_record(output.params, index),
        "initial_params": params_record(output.initial_params, index),
        "contacts": {
            "human": contacts.human[index].cpu().tolist(),
            "object": contacts.object[index].cpu().tolist(),
            "floor": float(contacts.floor[index]),
        },
        "body_downsample_index": body.downsample_index.cpu().tolist(),
        "guidance_loss_history": output.guidance_loss_history[:, index].cpu().tolist(),
        **({"intrinsics": np.asarray(intrinsics, dtype=float).tolist()} if intrinsics is not None else {}),
        **(extra or {}),
    }
    paths["json"] = write_json(out / f"{name}.json", record)
    paths["smplh"] = write_npz(out / f"{name}_smplh.npz",
                               smplh_arrays(output.params, index, body, contacts=contacts, intrinsics=intrinsics))
    return paths
