"""Build the licence-free primitive object meshes shipped in ``scorehoi_diffusers/assets/objects``.

A development tool, not installed with the package (which only loads the meshes,
:func:`scorehoi_diffusers.objects.load_object`). Regenerate them, and their signed-distance grids at the default
options (``assets/objects/sdf``), from the repository root with ``python -m tools.primitives``; it needs the
development-only package ``manifold3d`` for boolean unions.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import trimesh

from scorehoi_diffusers.objects import PRIMITIVE_DIR, PRIMITIVE_NAMES, ObjectTemplate
from scorehoi_diffusers.template_cache import SHIPPED_GRID_DIR


def write_primitives(folder: str | os.PathLike = PRIMITIVE_DIR) -> list[Path]:
    """Build the licence-free primitive meshes and write them to `folder/NAME.ply`.

    Parts are joined with exact boolean unions (trimesh's manifold engine, `pip install manifold3d`),
    so every mesh is one watertight surface, centred at its bounding-box centre, +y up, in metres.

    Returns:
        the written paths, in :data:`PRIMITIVE_NAMES` order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PRIMITIVE_NAMES:
        mesh = _PRIMITIVE_BUILDERS[name]()
        mesh.apply_translation(-mesh.bounds.mean(axis=0))
        if not mesh.is_watertight:
            raise RuntimeError(f"Primitive {name!r} came out non-watertight; check its parts.")
        path = folder / f"{name}.ply"
        mesh.export(path, encoding="binary")
        paths.append(path)
    return paths


def write_primitive_grids(folder: str | os.PathLike = SHIPPED_GRID_DIR) -> list[Path]:
    """Build the shipped primitives' signed-distance grids at the default options into `folder`.

    `load_object(name)` finds them there by the cache key of its mesh and options, so the shipped objects cost
    no grid build on first use. Every grid is rebuilt: the folder's old files are removed first (they would
    otherwise be read instead of built).

    Returns:
        the written paths, in :data:`PRIMITIVE_NAMES` order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("sdf-*.npz"):
        old.unlink()
    paths = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in PRIMITIVE_NAMES:
            before = set(Path(scratch).glob("sdf-*.npz"))
            ObjectTemplate.from_file(PRIMITIVE_DIR / f"{name}.ply", name=name, sdf_cache=scratch)
            (built,) = set(Path(scratch).glob("sdf-*.npz")) - before
            paths.append(Path(shutil.copy(built, folder / built.name)))
    return paths


def _union(parts: Sequence[trimesh.Trimesh]) -> trimesh.Trimesh:
    try:
        import manifold3d  # noqa: F401  (trimesh's boolean engine)
    except ImportError as error:
        raise ImportError("write_primitives needs manifold3d for boolean unions: `pip install manifold3d`.") from error
    return trimesh.boolean.union(list(parts), engine="manifold")


def _box(extents, center, subdivisions: int = 0) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=extents, transform=trimesh.transformations.translation_matrix(center))
    for _ in range(subdivisions):
        mesh = mesh.subdivide()
    return mesh


def _upright_cylinder(radius: float, height: float, base_center, sections: int = 24) -> trimesh.Trimesh:
    """A cylinder along +y whose bottom face is centred at `base_center`."""
    mesh = trimesh.creation.cylinder(radius=radius, height=height, sections=sections)
    mesh.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, [1, 0, 0]))
    mesh.apply_translation(np.asarray(base_center, dtype=float) + [0.0, height / 2, 0.0])
    return mesh


def _rounded_box(extents, radius: float, center=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    """Convex hull of eight spheres: a box with rounded edges and corners."""
    half = np.asarray(extents, dtype=float) / 2 - radius
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=radius).vertices
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * half
    hull = trimesh.convex.convex_hull((corners[:, None, :] + sphere[None]).reshape(-1, 3))
    hull.apply_translation(center)
    return hull


def _make_box() -> trimesh.Trimesh:
    # A medium moving box (BEHAVE's boxmedium is about this size).
    return _box((0.40, 0.30, 0.30), (0.0, 0.0, 0.0), subdivisions=3)


def _make_ball() -> trimesh.Trimesh:
    # A basketball: radius 12 cm.
    return trimesh.creation.icosphere(subdivisions=3, radius=0.12)


def _make_stool() -> trimesh.Trimesh:
    # Round seat 34 cm across at 45 cm, four legs joined by a ring of rungs.
    seat = _upright_cylinder(0.17, 0.04, (0.0, 0.41, 0.0), sections=40)
    legs = [
        _upright_cylinder(0.016, 0.42, (0.12 * x, 0.0, 0.12 * z), sections=12)
        for x, z in ((1, 0), (-1, 0), (0, 1), (0, -1))
    ]
    rungs = [_box((0.26, 0.02, 0.02), (0.0, 0.15, 0.0)), _box((0.02, 0.02, 0.26), (0.0, 0.15, 0.0))]
    return _union([seat, *legs, *rungs])


def _make_table() -> trimesh.Trimesh:
    # 1.0 x 0.6 m top, 75 cm high, four square legs and an apron under the top.
    top = _box((1.0, 0.04, 0.6), (0.0, 0.73, 0.0))
    legs = [_box((0.05, 0.71, 0.05), (0.44 * x, 0.355, 0.24 * z)) for x in (-1, 1) for z in (-1, 1)]
    apron = [_box((0.84, 0.08, 0.02), (0.0, 0.67, 0.24 * z)) for z in (-1, 1)] + [
        _box((0.02, 0.08, 0.44), (0.44 * x, 0.67, 0.0)) for x in (-1, 1)
    ]
    return _union([top, *legs, *apron]).subdivide()


def _make_chair() -> trimesh.Trimesh:
    # 45 x 45 cm seat at 45 cm, backrest to 90 cm on the -z side (a sitter faces +z).
    seat = _box((0.45, 0.04, 0.45), (0.0, 0.43, 0.0))
    front_legs = [_box((0.04, 0.41, 0.04), (0.2 * x, 0.205, 0.2)) for x in (-1, 1)]
    back_posts = [_box((0.04, 0.90, 0.04), (0.2 * x, 0.45, -0.2)) for x in (-1, 1)]
    back_rest = _box((0.40, 0.25, 0.025), (0.0, 0.74, -0.2))
    rungs = [_box((0.02, 0.02, 0.40), (0.2 * x, 0.12, 0.0)) for x in (-1, 1)]
    # Subdivided so long faces don't dominate renders and per-face sampling.
    return _union([seat, *front_legs, *back_posts, back_rest, *rungs]).subdivide()


def _make_stick() -> trimesh.Trimesh:
    # A baseball-bat-like stick, 84 cm long along +y: knob, thin handle, tapering to a 6.6 cm barrel.
    profile = np.array(
        [
            [0.0, 0.0],
            [0.024, 0.0],
            [0.024, 0.012],
            [0.013, 0.022],
            [0.013, 0.30],
            [0.022, 0.50],
            [0.033, 0.66],
            [0.033, 0.82],
            [0.026, 0.84],
            [0.0, 0.84],
        ]
    )
    mesh = trimesh.creation.revolve(profile, sections=24)  # revolves around +z
    mesh.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, [1, 0, 0]))
    return mesh


def _make_bag() -> trimesh.Trimesh:
    # A backpack: 30 x 42 x 16 cm body, a front pocket (+z), a top handle and two shoulder straps (-z).
    body = _rounded_box((0.30, 0.42, 0.16), 0.04, (0.0, 0.21, 0.0))
    pocket = _rounded_box((0.24, 0.18, 0.08), 0.025, (0.0, 0.12, 0.08))
    handle = _box((0.10, 0.03, 0.02), (0.0, 0.46, 0.0))
    handle_feet = [_box((0.015, 0.05, 0.02), (0.045 * x, 0.43, 0.0)) for x in (-1, 1)]
    straps = [_box((0.05, 0.36, 0.02), (0.08 * x, 0.22, -0.085)) for x in (-1, 1)]
    return _union([body, pocket, handle, *handle_feet, *straps])


_PRIMITIVE_BUILDERS = {
    "box": _make_box,
    "ball": _make_ball,
    "stool": _make_stool,
    "table": _make_table,
    "chair": _make_chair,
    "stick": _make_stick,
    "bag": _make_bag,
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Rebuild the licence-free primitive object meshes.")
    parser.add_argument("--out", type=Path, default=PRIMITIVE_DIR, help="output folder")
    args = parser.parse_args(argv)
    for path in write_primitives(args.out):
        print(f"wrote {path}")
    if args.out == PRIMITIVE_DIR:  # the grids are keyed by the shipped meshes
        for path in write_primitive_grids():
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
