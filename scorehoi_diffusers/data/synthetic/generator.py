"""The public scene generator: seeded scenes of one body model as camera-frame parameters, contacts and renders."""
from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ...body import BodyModel
from ...contacts import CONTACT_THRESHOLD, FLOOR_CONTACT_THRESHOLD
from ...objects import PRIMITIVE_NAMES, load_object
from ...params import HOIParams, axis_angle_to_matrix, matrix_to_axis_angle
from ...skeleton import BODY_JOINTS, HAND_JOINTS
from ..schema import params_to_fields
from .recipes import _RECIPES, INTERACTIONS, _finish
from .render import _body_part_faces, _render_scene
from .rig import _Rig
from .scene import _measure_object, _SceneBatch

MAX_ATTEMPTS = 8
SPLITS = {"train": 0, "test": 1}
_NUM_DRAWS = 512  # uniform numbers drawn per sample and attempt; recipes read them in a fixed order


@contextlib.contextmanager
def _one_thread():
    """Run torch on one thread: the scene maths is thousands of small ops, which extra threads only slow
    down (their hand-offs cost more than the work); parallelism comes from processes instead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class SyntheticScenes:
    """A batch of synthetic scenes (parameters only).

    Attributes:
        params: :class:`HOIParams` (float32, camera axes).
        contacts: ``{"human": (B, S), "object": (B, 64), "floor": (B,)}`` float32 0/1 labels.
        object_names: object of each sample.
        interactions: recipe of each sample (see :data:`INTERACTIONS`).
        indices: ``(B,)`` sample indices.
        intrinsics: ``(B, 3, 3)`` float32 pinhole matrices for a 1-pixel image; scale the first two rows by
            the image size (:meth:`intrinsics_for`).
        floor_plane: ``(B, 4)`` float32 ``(nx, ny, nz, d)`` of the floor in camera space, ``n`` pointing up.
        failed: ``(B,)`` bool, samples that did not pass the plausibility checks in any attempt (rare).
    """

    params: HOIParams
    contacts: dict[str, torch.Tensor]
    object_names: list[str]
    interactions: list[str]
    indices: np.ndarray
    intrinsics: torch.Tensor
    floor_plane: torch.Tensor
    failed: torch.Tensor

    @classmethod
    def cat(cls, parts: Sequence[SyntheticScenes]) -> SyntheticScenes:
        """The scenes of ``parts`` in order, as one batch."""
        if not parts:
            raise ValueError("SyntheticScenes.cat needs at least one batch of scenes.")
        return cls(
            params=HOIParams.cat([part.params for part in parts]),
            contacts={key: torch.cat([part.contacts[key] for part in parts]) for key in parts[0].contacts},
            object_names=[name for part in parts for name in part.object_names],
            interactions=[name for part in parts for name in part.interactions],
            indices=np.concatenate([part.indices for part in parts]),
            intrinsics=torch.cat([part.intrinsics for part in parts]),
            floor_plane=torch.cat([part.floor_plane for part in parts]),
            failed=torch.cat([part.failed for part in parts]),
        )

    def intrinsics_for(self, image_size: int) -> torch.Tensor:
        """``(B, 3, 3)`` intrinsics for square images of ``image_size`` pixels (pixel centres at integers)."""
        K = self.intrinsics.clone()
        K[:, :2] *= image_size
        K[:, :2, 2] -= 0.5
        return K


def _select(
    objects: Sequence[str] | None, interactions: Sequence[str] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Validated ``(objects, interactions)``: the interactions drawn and the objects they use."""
    if isinstance(objects, str):
        objects = (objects,)
    if isinstance(interactions, str):
        interactions = (interactions,)
    if objects is not None:
        objects = tuple(dict.fromkeys(objects))
        unknown = [name for name in objects if name not in PRIMITIVE_NAMES]
        if unknown or not objects:
            raise ValueError(
                f"`objects` must be a non-empty list of the shipped primitives {list(PRIMITIVE_NAMES)} (the "
                f"interaction recipes are written for them), got {list(objects)}."
            )
    if interactions is not None:
        interactions = tuple(dict.fromkeys(interactions))
        unknown = [name for name in interactions if name not in _RECIPES]
        if unknown or not interactions:
            raise ValueError(
                f"`interactions` must be a non-empty list of {list(INTERACTIONS)}, got {list(interactions)}."
            )
    chosen = tuple(
        name for name, (obj, _, _) in _RECIPES.items()
        if (objects is None or obj in objects) and (interactions is None or name in interactions)
    )
    if not chosen:
        raise ValueError(
            f"No interaction uses the objects {list(objects)} among the interactions {list(interactions)}."
        )
    used = tuple(dict.fromkeys(_RECIPES[name][0] for name in chosen))
    return used, chosen


def _check_split(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {list(SPLITS)}, got {split!r}.")
    return SPLITS[split]


def _check_count(name: str, value: int, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


class SyntheticHOIGenerator:
    """Seeded synthetic HOI scenes for one body model and a set of the shipped object primitives.

    Args:
        body: a :class:`~scorehoi_diffusers.body.BodyModel`; ``None`` loads the licence-free stand-in body.
        objects: primitive names to use (default: all of :data:`~scorehoi_diffusers.objects.PRIMITIVE_NAMES`);
            only the interactions of these objects are drawn.
        interactions: names from :data:`INTERACTIONS` to draw (default: all those of ``objects``).
    """

    def __init__(self, body: BodyModel | None = None, objects: Sequence[str] | None = None,
                 interactions: Sequence[str] | None = None):
        if body is None:
            body = _default_body()
        if not isinstance(body, BodyModel):
            raise TypeError(f"`body` must be a BodyModel or None, got {type(body).__name__}.")
        self.body = body
        self.objects, self.interactions = _select(objects, interactions)
        if body not in _RIGS:
            _RIGS[body] = _Rig(body)
        self.rig = _RIGS[body]
        self.templates = {name: load_object(name) for name in self.objects}
        self.geometry = {name: _measure_object(t) for name, t in self.templates.items()}
        weights = np.array([_RECIPES[name][2] for name in self.interactions])
        self._cumulative = np.cumsum(weights / weights.sum())
        self._part_faces = None

    # -- parameters -------------------------------------------------------------------------------------

    def scenes(self, indices: Sequence[int], seed: int = 0, split: str = "train") -> SyntheticScenes:
        """Build the scenes ``indices`` of ``(seed, split)``; each depends only on its own index."""
        stream = _check_split(split)
        seed = _check_count("seed", seed)
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(indices) == 0:
            raise ValueError("`indices` is empty.")
        if (indices < 0).any():
            raise ValueError("`indices` must be non-negative.")
        n = len(indices)
        kinds = self._kinds(indices, seed, stream)
        results: dict[str, torch.Tensor] = {}
        pending = np.arange(n)
        with torch.no_grad(), _one_thread():
            for attempt in range(MAX_ATTEMPTS):
                uniforms = torch.as_tensor(np.stack([
                    np.random.default_rng([stream, seed, int(indices[k]), attempt + 1]).random(_NUM_DRAWS)
                    for k in pending
                ]))
                still_failing = []
                for kind in np.unique(kinds[pending]):
                    rows = np.flatnonzero(kinds[pending] == kind)
                    name = self.interactions[kind]
                    object_name, recipe, _ = _RECIPES[name]
                    ctx = _SceneBatch(self.rig, name, self.templates[object_name], self.geometry[object_name],
                                      uniforms[rows])
                    recipe(ctx)
                    out = _finish(ctx)
                    targets = pending[rows]
                    for key, value in out.items():
                        if key not in results:
                            results[key] = torch.zeros((n,) + tuple(value.shape[1:]), dtype=value.dtype)
                        results[key][targets] = value
                    still_failing.append(targets[out["failed"].numpy()])
                pending = np.sort(np.concatenate(still_failing))
                if len(pending) == 0:
                    break
            object_names = [_RECIPES[self.interactions[k]][0] for k in kinds]
            return self._assemble(results, indices, object_names, [self.interactions[k] for k in kinds])

    def _kinds(self, indices: np.ndarray, seed: int, stream: int) -> np.ndarray:
        """Index into :attr:`interactions` of each sample: its stream's first number, whatever the attempt."""
        choice = np.array([np.random.default_rng([stream, seed, int(i)]).random() for i in indices])
        return np.minimum(np.searchsorted(self._cumulative, choice, side="right"), len(self.interactions) - 1)

    def interactions_of(self, indices: Sequence[int], seed: int = 0, split: str = "train") -> list[str]:
        """The interaction each sample ``indices`` of ``(seed, split)`` shows, without building it."""
        stream = _check_split(split)
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        return [self.interactions[k] for k in self._kinds(indices, _check_count("seed", seed), stream)]

    def _assemble(self, results, indices, object_names, interactions) -> SyntheticScenes:
        """World-frame results to camera-frame :class:`HOIParams` and ground-truth contacts."""
        rotation = results["camera_rotation"]
        local = results["local"]
        hand_offsets = matrix_to_axis_angle(local[:, HAND_JOINTS]) - self.rig.hand_mean
        params = HOIParams(
            global_orient=rotation @ local[:, 0],
            body_pose=local[:, BODY_JOINTS],
            left_hand_pose=axis_angle_to_matrix(hand_offsets[:, :15]),
            right_hand_pose=axis_angle_to_matrix(hand_offsets[:, 15:]),
            betas=results["betas"],
            object_rotation=rotation @ results["object_rotation"],
            object_translation=(rotation @ results["object_translation"][..., None])[..., 0],
            camera_translation=-(rotation @ results["camera_centre"][..., None])[..., 0],
        ).to(dtype=torch.float32)
        up = rotation[:, :, 1].float()  # world +y in camera axes
        # Floor: up . (p - pelvis) = floor height, i.e. up . p + d = 0 with d = -up . pelvis - floor.
        d = -(up * params.camera_translation).sum(1) - results["floor"].float()
        floor_plane = torch.cat([up, d[:, None]], dim=1)
        contacts = self._contacts(params, object_names, up, results["floor"].float())
        return SyntheticScenes(
            params=params,
            contacts=contacts,
            object_names=object_names,
            interactions=interactions,
            indices=np.asarray(indices),
            intrinsics=results["intrinsics"].float(),
            floor_plane=floor_plane,
            failed=results["failed"],
        )

    def _contacts(self, params: HOIParams, object_names: list[str], up: torch.Tensor, floor: torch.Tensor):
        """Ground-truth contacts from the final float32 parameters through the body model itself."""
        output = self.body(params, frame="pelvis")
        n = params.batch_size
        human = torch.zeros(n, self.body.num_downsampled)
        objects = torch.zeros(n, 64)
        floor_contact = torch.zeros(n)
        names = np.array(object_names)
        for name in np.unique(names):
            rows = torch.as_tensor(np.flatnonzero(names == name))
            template = self.templates[name]
            R, t = params.object_rotation[rows], params.object_translation[rows]
            sdf = template.signed_distance_posed(output.downsampled_vertices[rows], R, t)
            human[rows] = (sdf < CONTACT_THRESHOLD).float()
            keypoints = template.pose(template.keypoints, R, t)
            nearest = torch.cdist(keypoints, output.vertices[rows]).amin(-1)
            objects[rows] = (nearest < CONTACT_THRESHOLD).float()
            heights = (template.pose(template.vertices, R, t) * up[rows, None]).sum(-1).amin(1) - floor[rows]
            floor_contact[rows] = (heights < FLOOR_CONTACT_THRESHOLD).float()
        return {"human": human, "object": objects, "floor": floor_contact}

    # -- rendering --------------------------------------------------------------------------------------

    def render(self, scenes: SyntheticScenes, image_size: int = 256, seed: int = 0,
               split: str = "train", randomized: bool = False) -> Iterator[dict]:
        """Render ``scenes`` (built with ``seed`` and ``split``) and yield one schema sample per scene.

        Appearance (clothes, skin, object and floor colours, wall, background, light) is drawn from each
        sample's own stream, so it too depends only on ``(seed, split, index)``. ``randomized`` switches to the
        randomised appearance (any colours, textures, clutter, light from any side; see
        :mod:`~scorehoi_diffusers.data.synthetic.render`): same scenes, same masks, other pictures.
        """
        stream = _check_split(split)
        image_size = _check_count("image_size", image_size, 16)
        params = scenes.params
        intrinsics = scenes.intrinsics_for(image_size).double().numpy()
        with torch.no_grad(), _one_thread():
            vertices = self.body(params, frame="camera").vertices.double().numpy()
        fields = params_to_fields(params)
        for k in range(params.batch_size):
            index = int(scenes.indices[k])
            rng = np.random.default_rng([stream, seed, index, 0])
            style = np.random.default_rng([stream, seed, index, 1]) if randomized else None
            template = self.templates[scenes.object_names[k]]
            image, human_mask, object_mask = _render_scene(scenes, k, vertices[k], template, self._body_parts(),
                                                           intrinsics[k], image_size, rng, style)
            union = human_mask | object_mask
            rows, cols = np.nonzero(union)
            if len(rows):
                bbox = [cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1]
            else:
                bbox = [0, 0, 0, 0]
            yield {
                "image": Image.fromarray(image),
                "human_mask": Image.fromarray(human_mask.astype(np.uint8) * 255),  # 2-D uint8: mode "L"
                "object_mask": Image.fromarray(object_mask.astype(np.uint8) * 255),
                "intrinsics": intrinsics[k].astype(np.float32),
                "bbox": np.asarray(bbox, dtype=np.float32),
                **{name: value[k] for name, value in fields.items()},
                "human_contact": scenes.contacts["human"][k].numpy(),
                "object_contact": scenes.contacts["object"][k].numpy(),
                "floor_contact": float(scenes.contacts["floor"][k]),
                "object_name": scenes.object_names[k],
                "gender": str(self.body.config.gender),
                "source": "synthetic",
                "sample_id": f"synthetic-{split}-{seed}-{index:08d}",
            }

    def _body_parts(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Body faces grouped by clothing region, computed once per generator (see :func:`_body_part_faces`)."""
        if self._part_faces is None:
            self._part_faces = _body_part_faces(self.body.faces.detach().cpu().numpy().astype(np.int64),
                                                self.rig.weights.numpy())
        return self._part_faces

    def samples(self, indices: Sequence[int], seed: int = 0, split: str = "train", image_size: int = 256,
                batch_size: int = 16, randomized: bool = False) -> Iterator[dict]:
        """Schema samples for ``indices``, built ``batch_size`` scenes at a time (``randomized``: see
        :meth:`render`)."""
        image_size = _check_count("image_size", image_size, 16)
        batch_size = _check_count("batch_size", batch_size, 1)
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        for start in range(0, len(indices), batch_size):
            scenes = self.scenes(indices[start: start + batch_size], seed, split)
            yield from self.render(scenes, image_size, seed, split, randomized)


# Rigs are measured once per body model and shared by its generators.
_RIGS: weakref.WeakKeyDictionary[BodyModel, _Rig] = weakref.WeakKeyDictionary()


_DEFAULT_BODY: dict[str, BodyModel] = {}


def _default_body() -> BodyModel:
    if "standin" not in _DEFAULT_BODY:
        _DEFAULT_BODY["standin"] = BodyModel()
    return _DEFAULT_BODY["standin"]
