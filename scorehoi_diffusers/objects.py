"""Rigid object templates: mesh, keypoints, surface samples and a differentiable signed-distance grid.

An :class:`ObjectTemplate` is everything the guidance terms and the models need to know about one rigid
object, precomputed once from its mesh:

* ``keypoints`` (K, 3): farthest-point samples of the surface (K = 64 by default), used as object tokens;
* ``surface_points`` / ``surface_normals`` (S, 3): seeded area-uniform surface samples with face normals;
* ``sdf_grid`` (R, R, R) over the box ``sdf_bounds`` (2, 3): signed distance in metres, negative inside,
  sampled trilinearly in torch by :meth:`ObjectTemplate.signed_distance` so gradients reach the query points.

Templates are in metres in their own frame. A posed object point is ``p_cam = R @ p_obj + t`` with
``R`` (B, 3, 3) and ``t`` (B, 3). The primitives shipped with the package (:data:`PRIMITIVE_NAMES`) are
centred at their bounding-box centre with +y up; user meshes keep the frame of their file unless
``center=True``, because dataset pose annotations refer to that frame.

Known names (:func:`load_object`):

* primitives, our own licence-free meshes in ``scorehoi_diffusers/assets/objects/NAME.ply``, built by the
  repository's development tool ``tools/primitives.py`` (not installed with the package);
* BEHAVE's 20 objects (:data:`BEHAVE_OBJECTS`) and InterCap's ``"01"`` .. ``"10"``
  (:data:`INTERCAP_OBJECTS`). Their meshes are licensed with the datasets and are not shipped: pass the
  folder you downloaded as ``object_root``. Tried layouts, in order, for a name ``NAME``::

      {object_root}/NAME/NAME.obj      (BEHAVE's objects/ folder)
      {object_root}/NAME/NAME.ply
      {object_root}/NAME/NAME_f1000.ply
      {object_root}/NAME.obj
      {object_root}/NAME.ply           (InterCap's obj_track/objs/ folder: 01.ply ..)
      {object_root}/NAME.glb
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np
import torch
import trimesh
from diffusers.utils import logging

from .point_sampling import farthest_point_indices
from .precision import upcast
from .signed_distance_grid import diameter, signed_distance_grid
from .template_cache import cached_signed_distance_grid

__all__ = [
    "BEHAVE_OBJECTS",
    "INTERCAP_OBJECTS",
    "PRIMITIVE_NAMES",
    "ObjectTemplate",
    "load_object",
]

PRIMITIVE_NAMES = ("box", "ball", "stool", "table", "chair", "stick", "bag")

BEHAVE_OBJECTS = (
    "backpack",
    "basketball",
    "boxlarge",
    "boxlong",
    "boxmedium",
    "boxsmall",
    "boxtiny",
    "chairblack",
    "chairwood",
    "keyboard",
    "monitor",
    "plasticcontainer",
    "stool",
    "suitcase",
    "tablesmall",
    "tablesquare",
    "toolbox",
    "trashbin",
    "yogaball",
    "yogamat",
)

INTERCAP_OBJECTS = tuple(f"{i:02d}" for i in range(1, 11))

logger = logging.get_logger(__name__)

PRIMITIVE_DIR = Path(__file__).resolve().parent / "assets" / "objects"

# Metres per unit of the length units a mesh file may be written in.
MESH_UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
# A template's geometry (SDF grid, surface samples, keypoints) comes from a mesh of at most this many faces:
# the 64^3 grid cannot resolve finer detail, and scanned meshes with millions of faces would cost minutes.
MAX_GEOMETRY_FACES = 100_000
# Hand-held and furniture objects are well under this size in metres; a larger mesh is likely in cm or mm.
LARGEST_PLAUSIBLE_SIZE = 10.0

_DATASET_LAYOUTS = (
    "{name}/{name}.obj",
    "{name}/{name}.ply",
    "{name}/{name}_f1000.ply",
    "{name}.obj",
    "{name}.ply",
    "{name}.glb",
)


class ObjectTemplate:
    """A rigid object with the precomputed geometry the guidance terms need.

    Build one with :meth:`from_trimesh`, :meth:`from_file` or :func:`load_object`. All tensors share one
    device and dtype (float32 by default, the face indices are long); move them with :meth:`to`.

    Attributes:
        name (`str`): object name.
        mesh (`trimesh.Trimesh`): the geometry-only mesh the template was built from (vertices merged).
        vertices (`torch.Tensor` of shape `(V, 3)`): mesh vertices in metres, template frame.
        faces (`torch.Tensor` of shape `(F, 3)`, long): triangle vertex indices.
        keypoints (`torch.Tensor` of shape `(K, 3)`): farthest-point surface samples, in sampling order.
        surface_points (`torch.Tensor` of shape `(S, 3)`): seeded area-uniform surface samples.
        surface_normals (`torch.Tensor` of shape `(S, 3)`): unit outward normals at `surface_points`.
        sdf_grid (`torch.Tensor` of shape `(R, R, R)`): exact signed distance at the grid nodes, indexed
            `[x, y, z]`, negative inside.
        sdf_bounds (`torch.Tensor` of shape `(2, 3)`): the grid box, `[min_corner, max_corner]`; node
            `(i, j, k)` sits at `min + (i, j, k) * (max - min) / (R - 1)`.
        is_watertight (`bool`): whether the mesh is closed; if not, the grid's sign is a ray-parity vote.
        diameter (`float`): largest distance between two vertices, metres.
    """

    def __init__(
        self,
        *,
        name: str,
        mesh: trimesh.Trimesh,
        vertices: torch.Tensor,
        faces: torch.Tensor,
        keypoints: torch.Tensor,
        surface_points: torch.Tensor,
        surface_normals: torch.Tensor,
        sdf_grid: torch.Tensor,
        sdf_bounds: torch.Tensor,
        is_watertight: bool,
        diameter: float,
    ):
        self.name = name
        self.mesh = mesh
        self.vertices = vertices
        self.faces = faces
        self.keypoints = keypoints
        self.surface_points = surface_points
        self.surface_normals = surface_normals
        self.sdf_grid = sdf_grid
        self.sdf_bounds = sdf_bounds
        self.is_watertight = is_watertight
        self.diameter = diameter

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_trimesh(
        cls,
        mesh: trimesh.Trimesh,
        name: str | None = None,
        num_keypoints: int = 64,
        num_surface_points: int = 2048,
        sdf_resolution: int = 64,
        sdf_padding: float = 0.1,
        center: bool = False,
        seed: int = 0,
        mesh_unit: str = "m",
        sdf_cache: bool | str | os.PathLike = True,
    ) -> ObjectTemplate:
        """Precompute a template from a mesh.

        Args:
            mesh (`trimesh.Trimesh`): the object in metres. Only its geometry is used; vertices that
                coincide (e.g. split along texture seams) are merged.
            name (`str`, *optional*): defaults to `"object"`.
            num_keypoints (`int`, defaults to 64): farthest-point keypoints to pick.
            num_surface_points (`int`, defaults to 2048): seeded surface samples (with normals).
            sdf_resolution (`int`, defaults to 64): grid nodes per axis.
            sdf_padding (`float`, defaults to 0.1): the grid box is the mesh's bounding box grown on every
                side by `max(sdf_padding * longest side, 2 cm)`.
            center (`bool`, defaults to `False`): translate the mesh so its bounding-box centre is the origin.
            seed (`int`, defaults to 0): seed of every random choice, so the result is deterministic.
            mesh_unit (`str`, defaults to `"m"`): length unit of the mesh's coordinates, one of `"m"`, `"cm"`,
                `"mm"` (:data:`MESH_UNITS`); the template is always in metres. A mesh more than 10 m across
                logs a warning naming the unit it is probably in.
            sdf_cache (`bool`, `str` or `os.PathLike`, defaults to `True`): where the signed-distance grid is
                cached on disk, keyed by a hash of the mesh and the grid options: `True` for the default folder
                (`$SCOREHOI_CACHE`, else `~/.cache/scorehoi_diffusers/templates`), a folder, or `False` to always
                compute it. The exact grid takes seconds per mesh; a cached one loads in milliseconds.

        A mesh that is not watertight logs a warning; its grid's unsigned distance is still accurate,
        but inside/outside is a majority vote of ray parity along 7 fixed directions (a discrete estimate
        of the winding number), which tolerates small holes. A mesh with more than
        :data:`MAX_GEOMETRY_FACES` faces logs a warning and is decimated for the grid, the surface samples and
        the keypoints (quadric decimation, which keeps the shape to well under a grid cell); `vertices`,
        `faces` and `mesh` stay the full-resolution mesh.
        """
        if not isinstance(mesh, trimesh.Trimesh):
            raise TypeError(f"`mesh` must be a trimesh.Trimesh, got {type(mesh).__name__}.")
        if num_keypoints < 1:
            raise ValueError(f"`num_keypoints` must be >= 1, got {num_keypoints}.")
        if num_surface_points < 1:
            raise ValueError(f"`num_surface_points` must be >= 1, got {num_surface_points}.")
        if sdf_resolution < 2:
            raise ValueError(f"`sdf_resolution` must be >= 2, got {sdf_resolution}.")
        if sdf_padding < 0:
            raise ValueError(f"`sdf_padding` must be >= 0, got {sdf_padding}.")
        if mesh_unit not in MESH_UNITS:
            raise ValueError(f"`mesh_unit` must be one of {list(MESH_UNITS)}, got {mesh_unit!r}.")
        name = "object" if name is None else str(name)
        mesh = _clean_mesh(mesh, name, MESH_UNITS[mesh_unit])
        if center:
            mesh.apply_translation(-mesh.bounds.mean(axis=0))
        _warn_if_implausible_size(mesh, name, mesh_unit)
        geometry = _geometry_mesh(mesh, name)

        rng = np.random.default_rng(seed)
        points, face_index = trimesh.sample.sample_surface(geometry, num_surface_points, seed=rng)
        normals = geometry.face_normals[face_index]
        pool, _ = trimesh.sample.sample_surface(geometry, max(4096, 8 * num_keypoints), seed=rng)
        keypoints = pool[farthest_point_indices(pool, num_keypoints, start=geometry.bounds.mean(axis=0))]

        if not geometry.is_watertight:
            logger.warning(
                f"Object mesh {name!r} is not watertight: its signed distance uses the unsigned distance "
                "with the sign from a ray-parity vote, which is unreliable near large holes. Repair the "
                "mesh (e.g. trimesh.repair.fill_holes) for a proper inside/outside."
            )
        if sdf_cache is False:
            grid, bounds = signed_distance_grid(geometry, sdf_resolution, sdf_padding)
        else:
            cache_dir = None if sdf_cache is True else sdf_cache
            grid, bounds = cached_signed_distance_grid(geometry, sdf_resolution, sdf_padding, cache_dir)

        float32 = torch.float32
        return cls(
            name=name,
            mesh=mesh,
            vertices=torch.as_tensor(mesh.vertices, dtype=float32),
            faces=torch.as_tensor(np.asarray(mesh.faces, dtype=np.int64)),
            keypoints=torch.as_tensor(keypoints, dtype=float32),
            surface_points=torch.as_tensor(points, dtype=float32),
            surface_normals=torch.as_tensor(normals, dtype=float32),
            sdf_grid=torch.as_tensor(grid, dtype=float32),
            sdf_bounds=torch.as_tensor(bounds, dtype=float32),
            is_watertight=bool(geometry.is_watertight),
            diameter=diameter(mesh),
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike, name: str | None = None, **kwargs) -> ObjectTemplate:
        """Read any mesh trimesh can read (.obj, .ply, .glb, ...) and build its template.

        A file holding a scene (several meshes, e.g. a .glb) is merged into one mesh with its node
        transforms applied. `name` defaults to the file's stem; other arguments go to :meth:`from_trimesh`.
        Uncached: :func:`load_object` caches templates.

        Raises:
            FileNotFoundError: nothing at `path`. IsADirectoryError: `path` is a folder.
            ValueError: the file is unreadable, has no faces, or has vertices with NaN or infinite coordinates.
        """
        path = Path(path)
        mesh = _read_mesh(path)
        return cls.from_trimesh(mesh, name=path.stem if name is None else name, **kwargs)

    # ------------------------------------------------------------------ properties

    @property
    def num_keypoints(self) -> int:
        return self.keypoints.shape[0]

    @property
    def extent(self) -> torch.Tensor:
        """`(3,)` side lengths of the vertices' axis-aligned bounding box, metres."""
        return self.vertices.amax(dim=0) - self.vertices.amin(dim=0)

    @property
    def device(self) -> torch.device:
        return self.sdf_grid.device

    @property
    def dtype(self) -> torch.dtype:
        return self.sdf_grid.dtype

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> ObjectTemplate:
        """A copy with every tensor on `device` and every floating tensor in `dtype` (faces stay long).

        The trimesh `mesh` is shared with the original.
        """
        if dtype is not None and not dtype.is_floating_point:
            raise ValueError(f"`dtype` must be a floating-point dtype, got {dtype}.")

        def move(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else None)

        return ObjectTemplate(
            name=self.name,
            mesh=self.mesh,
            vertices=move(self.vertices),
            faces=move(self.faces),
            keypoints=move(self.keypoints),
            surface_points=move(self.surface_points),
            surface_normals=move(self.surface_normals),
            sdf_grid=move(self.sdf_grid),
            sdf_bounds=move(self.sdf_bounds),
            is_watertight=self.is_watertight,
            diameter=self.diameter,
        )

    def __repr__(self) -> str:
        extent = ", ".join(f"{v:.3f}" for v in self.extent.tolist())
        return (
            f"ObjectTemplate(name={self.name!r}, vertices={self.vertices.shape[0]}, faces={self.faces.shape[0]}, "
            f"extent=({extent}) m, watertight={self.is_watertight}, sdf_resolution={self.sdf_grid.shape[0]}, "
            f"device={self.device}, dtype={self.dtype})"
        )

    # ------------------------------------------------------------------ posing

    @staticmethod
    def pose(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
        """Map template-frame points to camera space: `p_cam = R @ p + t`.

        Args:
            points (`torch.Tensor` of shape `(N, 3)` or `(B, N, 3)`): e.g. `template.keypoints`.
            rotation (`torch.Tensor` of shape `(B, 3, 3)`): object rotations.
            translation (`torch.Tensor` of shape `(B, 3)`): object translations.

        Returns:
            `torch.Tensor` of shape `(B, N, 3)`.
        """
        points = _check_pose_args(points, rotation, translation)
        return points @ rotation.transpose(1, 2) + translation[:, None, :]

    @staticmethod
    def unpose(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
        """Map camera-space points to the template frame: `p = R^T (p_cam - t)`; inverse of :meth:`pose`.

        Shapes as in :meth:`pose`; returns `(B, N, 3)`.
        """
        points = _check_pose_args(points, rotation, translation)
        return (points - translation[:, None, :]) @ rotation

    # ------------------------------------------------------------------ signed distance

    def signed_distance(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance (metres, negative inside) of template-frame points, differentiable in `points`.

        Inside the grid box the grid is interpolated trilinearly (`grid_sample`, twice differentiable).
        Outside it the value is the grid's value at the nearest point `c` of the box plus `|p - c|`:
        continuous, positive, and growing with distance.

        Args:
            points (`torch.Tensor` of shape `(..., 3)`, typically `(B, N, 3)`): on the template's device.
                Computed in their dtype promoted to at least float32 (a half-precision lookup is off by
                millimetres), whatever the template's dtype.

        Returns:
            `torch.Tensor` of shape `(...)`, in the dtype of `points`.
        """
        if not isinstance(points, torch.Tensor):
            raise TypeError(f"`points` must be a torch.Tensor, got {type(points).__name__}.")
        if points.ndim < 1 or points.shape[-1] != 3:
            raise ValueError(f"`points` must have shape (..., 3), got {tuple(points.shape)}.")
        if not points.is_floating_point():
            raise TypeError(f"`points` must be floating point, got {points.dtype}.")
        if points.device != self.device:
            raise ValueError(
                f"`points` is on {points.device} but the template is on {self.device}; "
                "move one of them (e.g. `template.to(points.device)`)."
            )
        dtype = points.dtype
        points = upcast(points)
        grid = self.sdf_grid.to(points.dtype)
        low, high = self.sdf_bounds.to(points.dtype)
        clamped = torch.maximum(torch.minimum(points, high), low)
        # grid_sample wants coordinates in [-1, 1] ordered (last grid axis, ..., first) = (z, y, x).
        normalized = ((clamped - low) / (high - low) * 2 - 1).flip(-1)
        inside_value = torch.nn.functional.grid_sample(
            grid[None, None], normalized.reshape(1, 1, 1, -1, 3), mode="bilinear", align_corners=True
        ).reshape(points.shape[:-1])

        # Distance to the grid box; the where-guard keeps the norm's gradient finite at the box surface.
        offset = points - clamped
        outside = (offset != 0).any(-1)
        safe_offset = torch.where(outside[..., None], offset, torch.ones_like(offset))
        box_distance = torch.linalg.vector_norm(safe_offset, dim=-1)
        return (inside_value + torch.where(outside, box_distance, torch.zeros_like(box_distance))).to(dtype)

    def signed_distance_posed(
        self, points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor
    ) -> torch.Tensor:
        """Signed distance of camera-space points to the posed object, differentiable in all inputs.

        Args:
            points (`torch.Tensor` of shape `(B, N, 3)` or `(N, 3)`): camera-space points.
            rotation (`torch.Tensor` of shape `(B, 3, 3)`): object rotations.
            translation (`torch.Tensor` of shape `(B, 3)`): object translations.

        Returns:
            `torch.Tensor` of shape `(B, N)`, in the dtype of `points` (computed in at least float32).
        """
        unposed = self.unpose(upcast(points), upcast(rotation), upcast(translation))
        return self.signed_distance(unposed).to(points.dtype)


# ---------------------------------------------------------------------- loading


def load_object(
    spec: ObjectTemplate | str | os.PathLike,
    object_root: str | os.PathLike | None = None,
    **options,
) -> ObjectTemplate:
    """Resolve an object specification to a template.

    Args:
        spec: one of
            * an :class:`ObjectTemplate` (returned as is);
            * a name. With `object_root` given, the name is first looked up there (layouts in the module
              docstring), so a dataset's `"stool"` wins over the primitive; a dataset name
              (:data:`BEHAVE_OBJECTS`, :data:`INTERCAP_OBJECTS`) missing there is an error, never replaced
              by a primitive. Otherwise a name from :data:`PRIMITIVE_NAMES` is the shipped primitive;
            * a path to a mesh file trimesh can read (a `str` with a suffix or a folder separator, or
              an `os.PathLike`).
        object_root (`str` or `os.PathLike`, *optional*): folder holding the user's object meshes, e.g.
            BEHAVE's `objects/` or InterCap's `obj_track/objs/`.
        **options: passed to :meth:`ObjectTemplate.from_trimesh` (e.g. `sdf_resolution=32`, or `mesh_unit="mm"`
            for a mesh file in millimetres).

    Templates are cached per (file, modification time, options) in a small LRU, so repeated calls
    return the same object: treat its tensors as read-only (use `.to()` for a private copy). Their
    signed-distance grids are also cached on disk across runs (`sdf_cache` in :meth:`ObjectTemplate.from_trimesh`).
    """
    if isinstance(spec, ObjectTemplate):
        if options:
            raise ValueError(f"`spec` is already an ObjectTemplate; options {sorted(options)} can't be applied to it.")
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"`spec` must be an ObjectTemplate, a name or a path, got {type(spec).__name__}.")
    path, name = _resolve_spec(spec, object_root)
    stat = path.stat()
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size, name, tuple(sorted(options.items())))


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int, size: int, name: str, options: tuple) -> ObjectTemplate:
    return ObjectTemplate.from_file(path, name=name, **dict(options))


def _resolve_spec(spec: str | os.PathLike, object_root) -> tuple[Path, str]:
    """The mesh file and the name a spec refers to (see :func:`load_object`)."""
    if isinstance(spec, os.PathLike):
        return _existing_file(Path(spec)), Path(spec).stem
    dataset_names = BEHAVE_OBJECTS + INTERCAP_OBJECTS
    tried = []
    if object_root is not None:
        root = Path(object_root)
        if not root.is_dir():
            raise FileNotFoundError(f"`object_root` {str(root)!r} is not a folder.")
        tried = [root / layout.format(name=spec) for layout in _DATASET_LAYOUTS]
        for candidate in tried:
            if candidate.is_file():
                return candidate, spec
        if spec in dataset_names:
            raise FileNotFoundError(
                f"No mesh for object {spec!r} under `object_root` {str(root)!r}; tried: "
                + ", ".join(str(p) for p in tried)
            )
    if spec in PRIMITIVE_NAMES:
        return PRIMITIVE_DIR / f"{spec}.ply", spec
    if spec in dataset_names:
        raise ValueError(
            f"Object {spec!r} is a dataset object whose mesh is licensed with its dataset and not shipped "
            "here. Download the dataset's object meshes and pass their folder as `object_root` "
            "(e.g. BEHAVE's objects/ folder, holding objects/NAME/NAME.obj)."
        )
    if Path(spec).suffix or "/" in spec or os.sep in spec:
        return _existing_file(Path(spec)), Path(spec).stem
    raise ValueError(
        f"Unknown object {spec!r}. Known names: primitives {list(PRIMITIVE_NAMES)}; BEHAVE "
        f"{list(BEHAVE_OBJECTS)} and InterCap {list(INTERCAP_OBJECTS)}, which need `object_root` (the folder "
        "of your dataset's object meshes); or pass a path to a mesh file (.obj, .ply, .glb)."
        + (f" Tried under `object_root`: {', '.join(str(p) for p in tried)}." if tried else "")
    )


def _existing_file(path: Path) -> Path:
    if path.is_dir():
        raise IsADirectoryError(
            f"Object mesh {str(path)!r} is a folder; give the mesh file inside it (.obj, .ply, .glb), or pass the "
            "folder as `object_root` with an object name."
        )
    if not path.is_file():
        raise FileNotFoundError(f"Object mesh file not found: {str(path)!r}.")
    return path


def _read_mesh(path: Path) -> trimesh.Trimesh:
    """Read a mesh file into one Trimesh, merging a multi-mesh scene with its transforms applied."""
    _existing_file(path)
    try:
        # Unprocessed, so that vertices with NaN coordinates are seen (processing silently drops them and the
        # faces using them, tearing holes) and refused.
        scene = trimesh.load_scene(str(path), process=False)
    except Exception as error:  # trimesh raises many types for unreadable files
        raise ValueError(f"Could not read object mesh {str(path)!r}: {error}") from error
    meshes = [g for g in scene.geometry.values() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    if not meshes:
        raise ValueError(f"Object mesh {str(path)!r} has no faces (a point cloud or an empty file?).")
    for mesh in meshes:
        bad = int((~np.isfinite(mesh.vertices).all(axis=1)).sum())
        if bad:
            raise ValueError(
                f"Object mesh {str(path)!r} has {bad} vertices with NaN or infinite coordinates; repair or "
                "re-export the file."
            )
        mesh.process()  # what loading with processing does: merge duplicate vertices
    return scene.to_mesh()


def _clean_mesh(mesh: trimesh.Trimesh, name: str, scale: float = 1.0) -> trimesh.Trimesh:
    """A geometry-only copy in metres (coordinates times `scale`) with coincident vertices merged and outward
    orientation, after validation."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces)
    if faces.ndim != 2 or len(faces) == 0:
        raise ValueError(f"Object mesh {name!r} has no faces; a template needs a triangle mesh.")
    if not np.isfinite(vertices).all():
        raise ValueError(f"Object mesh {name!r} has NaN or infinite vertex coordinates; repair the mesh.")
    if scale != 1.0:
        vertices = vertices * scale
    clean = trimesh.Trimesh(vertices=vertices, faces=faces, process=True)
    clean.update_faces(clean.nondegenerate_faces())
    clean.remove_unreferenced_vertices()
    if len(clean.faces) == 0 or clean.area <= 0:
        raise ValueError(f"Object mesh {name!r} has only degenerate (zero-area) faces.")
    if clean.is_watertight and clean.volume < 0:
        clean.invert()  # inside-out winding: flip so normals point outward
    return clean


def _warn_if_implausible_size(mesh: trimesh.Trimesh, name: str, mesh_unit: str) -> None:
    """Log a warning naming the likely unit when a mesh is far too large to be an object in metres."""
    size = float((mesh.bounds[1] - mesh.bounds[0]).max())
    if size <= LARGEST_PLAUSIBLE_SIZE:
        return
    numbers = size / MESH_UNITS[mesh_unit]  # the size in the file's own numbers
    # The unit that makes it closest, in ratio, to a typical object of half a metre.
    likely = min(("cm", "mm"), key=lambda unit: abs(math.log(numbers * MESH_UNITS[unit] / 0.5)))
    advice = (f"its file is probably in {likely}: pass mesh_unit={likely!r} (scorehoi --mesh-unit {likely})"
              if mesh_unit == "m" else "check the file's unit and scale")
    logger.warning(f"Object mesh {name!r} is {size:.4g} m across, larger than any object it could be; {advice}.")


def _geometry_mesh(mesh: trimesh.Trimesh, name: str) -> trimesh.Trimesh:
    """`mesh`, or a decimated copy of it when it has more than :data:`MAX_GEOMETRY_FACES` faces."""
    if len(mesh.faces) <= MAX_GEOMETRY_FACES:
        return mesh
    logger.warning(
        f"Object mesh {name!r} has {len(mesh.faces)} faces; its signed-distance grid, surface samples and "
        f"keypoints are computed on a copy decimated to {MAX_GEOMETRY_FACES} faces."
    )
    decimated = mesh.simplify_quadric_decimation(face_count=MAX_GEOMETRY_FACES)
    decimated.update_faces(decimated.nondegenerate_faces())
    decimated.remove_unreferenced_vertices()
    if decimated.is_watertight and decimated.volume < 0:
        decimated.invert()
    return decimated


# ---------------------------------------------------------------------- pose argument checks


def _check_pose_args(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Validate pose arguments; return `points` as `(B, N, 3)`."""
    for arg, value in (("points", points), ("rotation", rotation), ("translation", translation)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"`{arg}` must be a torch.Tensor, got {type(value).__name__}.")
    if rotation.ndim != 3 or rotation.shape[1:] != (3, 3):
        raise ValueError(f"`rotation` must have shape (B, 3, 3), got {tuple(rotation.shape)}.")
    batch = rotation.shape[0]
    if translation.shape != (batch, 3):
        raise ValueError(f"`translation` must have shape (B, 3) = ({batch}, 3), got {tuple(translation.shape)}.")
    if points.ndim == 2 and points.shape[1] == 3:
        return points.expand(batch, -1, -1)
    if points.ndim == 3 and points.shape[0] == batch and points.shape[2] == 3:
        return points
    raise ValueError(f"`points` must have shape (N, 3) or (B, N, 3) with B = {batch}, got {tuple(points.shape)}.")
