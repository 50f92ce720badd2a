"""SMPL-H body model: smplx's own ``SMPLH`` layer plus the fast subset skinning the guidance loop needs.

``BodyModel`` loads either the SMPL-H files a user downloaded (a path; licensed to the user, never copied
into a saved pipeline) or the project's licence-free stand-in body (:mod:`scorehoi_diffusers.standin_body`),
always through ``smplx.SMPLH``, so the stand-in exercises the same code path as real SMPL-H.

Two forwards:
- :meth:`BodyModel.forward` runs smplx's full forward and gives whole meshes (built once, at the end).
- :meth:`BodyModel.skin_subset` skins only the downsampled vertices (a fixed subset of real mesh vertices):
  the same linear blend skinning restricted to those rows, exact to float precision and far cheaper, which
  is all the guidance terms need inside the sampling loop. :meth:`BodyModel.skin_subset_landmarks` also skins
  the landmark vertices (face, feet, fingertips), sharing the kinematics, for the keypoint reprojection term.

:func:`blazepose_points` turns joints and landmarks (of either forward) into the body points of mediapipe's 33
BlazePose landmarks, through the one mapping in :mod:`scorehoi_diffusers.skeleton`.
"""
from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import smplx
import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput

from .kinematics import forward_kinematics, kinematic_levels, skin_points
from .params import NUM_BETAS, HOIParams, axis_angle_to_matrix, matrix_to_axis_angle
from .point_sampling import farthest_point_indices
from .precision import geometry_dtype
from .safetensors_only import SafetensorsOnlyMixin
from .skeleton import (
    BLAZEPOSE_BODY_INDEX,
    BLAZEPOSE_FITTED,
    BODY_JOINTS,
    LANDMARK_NAMES,
    LEFT_HAND_JOINTS,
    NUM_HAND_JOINTS,
    NUM_JOINTS,
    RIGHT_HAND_JOINTS,
)
from .strict_config import StrictConfigMixin

# The paper downsamples SMPL-H's 6890 vertices to 431; other meshes keep the same proportion.
SMPLH_NUM_VERTICES = 6890
SMPLH_NUM_DOWNSAMPLED = 431

REQUIRED_FIELDS = (
    "v_template",
    "f",
    "shapedirs",
    "posedirs",
    "J_regressor",
    "weights",
    "kintree_table",
    "hands_componentsl",
    "hands_componentsr",
    "hands_meanl",
    "hands_meanr",
)
# Extra fields some files carry; everything else in a user's file is ignored.
LANDMARK_FIELDS = ("landmark_names", "landmark_indices")


@dataclass
class BodyOutput(BaseOutput):
    """Output of :meth:`BodyModel.forward`.

    Attributes:
        vertices: ``(B, V, 3)`` mesh vertices.
        joints: ``(B, 52, 3)`` SMPL-H skeleton joints.
        landmarks: ``(B, L, 3)`` smplx's extra keypoints (face, feet and fingertip vertices).
        downsampled_vertices: ``(B, S, 3)`` the downsampled subset of ``vertices``.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    landmarks: torch.Tensor
    downsampled_vertices: torch.Tensor


def blazepose_points(joints: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """The body points of the 33 BlazePose landmarks (``skeleton.BLAZEPOSE_BODY_INDEX``), same frame as the input.

    Landmarks without a body point (``skeleton.BLAZEPOSE_FITTED`` False: inner/outer eye and mouth corners) get
    the zero vector, so the result never holds NaN; weight them out with ``BLAZEPOSE_FITTED``.

    Args:
        joints: ``(B, 52, 3)`` SMPL-H joints.
        landmarks: ``(B, 21, 3)`` the landmark vertices in ``skeleton.LANDMARK_NAMES`` order.

    Returns:
        ``(B, 33, 3)`` points in BlazePose order.
    """
    if joints.dim() != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"`joints` must have shape (B, {NUM_JOINTS}, 3), got {tuple(joints.shape)}.")
    if landmarks.shape != (joints.shape[0], len(LANDMARK_NAMES), 3):
        raise ValueError(
            f"`landmarks` must have shape ({joints.shape[0]}, {len(LANDMARK_NAMES)}, 3), got {tuple(landmarks.shape)}."
        )
    index = torch.tensor([max(i, 0) for i in BLAZEPOSE_BODY_INDEX], device=joints.device)
    fitted = torch.tensor(BLAZEPOSE_FITTED, device=joints.device)[:, None]
    points = torch.cat([joints, landmarks], dim=1).index_select(1, index)
    return torch.where(fitted, points, torch.zeros_like(points))


def resolve_body_file(model_path: str | os.PathLike, gender: str = "neutral") -> Path:
    """Find the SMPL-H ``.npz`` for ``gender`` in a file or folder path a user gives.

    Accepted layouts: a ``.npz`` file; a folder with ``SMPLH_{GENDER}.npz`` (smplx's layout); a folder with
    ``{gender}/model.npz`` (the extended SMPL+H release).
    """
    path = Path(model_path).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"`model_path` {str(path)!r} does not exist. Pass the SMPL-H .npz file (or its folder) you "
            "downloaded from the MANO/SMPL-H site, or leave `model_path=None` for the stand-in body."
        )
    if path.is_dir():
        candidates = [path / f"SMPLH_{gender.upper()}.npz", path / gender / "model.npz", path / "model.npz"]
        found = [c for c in candidates if c.is_file()]
        if not found:
            names = ", ".join(str(c.relative_to(path)) for c in candidates)
            raise FileNotFoundError(
                f"No SMPL-H file for gender {gender!r} in `model_path` {str(path)!r}; looked for {names}."
            )
        path = found[0]
    if path.suffix == ".pkl":
        raise ValueError(
            f"`model_path` {str(path)!r} is a pickle. Pickles can run code when loaded, so they are not read. "
            "Use the .npz files of the extended SMPL+H release (smplh/{male,female,neutral}/model.npz)."
        )
    if path.suffix != ".npz":
        raise ValueError(f"`model_path` {str(path)!r} must be a SMPL-H .npz file or a folder holding one.")
    return path


def load_body_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the SMPL-H fields of an ``.npz`` without unpickling anything (``allow_pickle=False``)."""
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"Could not read SMPL-H file {str(path)!r} as an .npz archive: {error}") from error
    with archive:
        missing = [name for name in REQUIRED_FIELDS if name not in archive.files]
        if missing:
            raise ValueError(
                f"SMPL-H file {str(path)!r} lacks the fields {missing}; it is not an SMPL-H model file."
            )
        arrays = {}
        for name in REQUIRED_FIELDS + LANDMARK_FIELDS:
            if name not in archive.files:
                continue
            try:
                arrays[name] = archive[name]
            except ValueError as error:
                raise ValueError(
                    f"Field {name!r} of SMPL-H file {str(path)!r} is stored as Python objects, which would need "
                    "unpickling; re-save the file with plain numeric arrays."
                ) from error
    _validate_arrays(arrays, path)
    return arrays


def _validate_arrays(arrays: dict[str, np.ndarray], path: Path) -> None:
    num_vertices = arrays["v_template"].shape[0]
    expected = {
        "v_template": (num_vertices, 3),
        "J_regressor": (NUM_JOINTS, num_vertices),
        "weights": (num_vertices, NUM_JOINTS),
        "kintree_table": (2, NUM_JOINTS),
        "hands_meanl": (45,),
        "hands_meanr": (45,),
    }
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ValueError(
                f"Field {name!r} of SMPL-H file {str(path)!r} has shape {arrays[name].shape}, expected {shape}."
            )
    faces = arrays["f"]
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
        raise ValueError(f"Field 'f' of SMPL-H file {str(path)!r} must be a non-empty (F, 3) face array.")
    if faces.min() < 0 or faces.max() >= num_vertices:
        raise ValueError(f"Field 'f' of SMPL-H file {str(path)!r} indexes vertices outside 0..{num_vertices - 1}.")
    if arrays["shapedirs"].shape[:2] != (num_vertices, 3) or arrays["shapedirs"].shape[2] < NUM_BETAS:
        raise ValueError(f"Field 'shapedirs' of SMPL-H file {str(path)!r} must be (V, 3, >= {NUM_BETAS}).")
    for name, value in arrays.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ValueError(f"Field {name!r} of SMPL-H file {str(path)!r} contains NaN or Inf.")


class BodyModel(SafetensorsOnlyMixin, StrictConfigMixin, ModelMixin, ConfigMixin):
    """SMPL-H through ``smplx.SMPLH``, with a fixed downsampled vertex subset.

    Args:
        model_path: a SMPL-H ``.npz`` file or folder the user downloaded, or ``None`` for the licence-free
            stand-in body shipped with the package. A saved pipeline stores this path, never the user's data.
        gender: ``"neutral"``, ``"male"`` or ``"female"`` (ignored by the gender-neutral stand-in).
        num_downsampled_vertices: size of the vertex subset used by the guidance; default keeps the paper's
            431/6890 proportion.
        downsample_seed: seed of the farthest-point sampling that picks the subset.

    The body is built in the default dtype promoted to at least float32 (``from_pretrained(dtype=...)`` sets the
    default while it builds components): a half-precision pipeline keeps a float32 body, a float64 one gets a
    float64 body. Both forwards compute in the body's dtype and return the dtype of the ``params`` they are given.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        model_path: str | None = None,
        gender: str = "neutral",
        num_downsampled_vertices: int | None = None,
        downsample_seed: int = 0,
    ):
        super().__init__()
        if gender not in ("neutral", "male", "female"):
            raise ValueError(f"`gender` must be 'neutral', 'male' or 'female', got {gender!r}.")
        if model_path is None:
            from .standin_body import STANDIN_BODY_PATH

            body_file = STANDIN_BODY_PATH
        else:
            body_file = resolve_body_file(model_path, gender)
        arrays = load_body_arrays(body_file)
        vertex_ids = None
        if "landmark_names" in arrays:
            vertex_ids = {str(n): int(i) for n, i in zip(arrays["landmark_names"], arrays["landmark_indices"])}
        elif arrays["v_template"].shape[0] != SMPLH_NUM_VERTICES:
            raise ValueError(
                f"SMPL-H file {str(body_file)!r} has {arrays['v_template'].shape[0]} vertices but no "
                "`landmark_names`/`landmark_indices`; smplx's default landmarks only fit 6890-vertex meshes."
            )
        struct_arrays = {k: v for k, v in arrays.items() if k not in LANDMARK_FIELDS}
        struct_arrays["shapedirs"] = struct_arrays["shapedirs"][:, :, :NUM_BETAS]
        # smplx prints a notice for files with fewer than 300 shape directions; we use exactly 10 on purpose.
        with contextlib.redirect_stdout(io.StringIO()):
            self.smplh = smplx.SMPLH(
                model_path=str(body_file),
                data_struct=smplx.utils.Struct(**struct_arrays),
                ext="npz",
                use_pca=False,
                flat_hand_mean=False,
                num_betas=NUM_BETAS,
                vertex_ids=vertex_ids,
                gender=gender,
                create_global_orient=False,
                create_body_pose=False,
                create_left_hand_pose=False,
                create_right_hand_pose=False,
                create_betas=False,
                create_transl=False,
                dtype=geometry_dtype(torch.get_default_dtype()),
            )
        # The body itself is data from `model_path`, not weights: keep it out of saved checkpoints.
        for module in self.smplh.modules():
            for name, buffer in list(module.named_buffers(recurse=False)):
                module.register_buffer(name, buffer, persistent=False)

        num_vertices = self.smplh.v_template.shape[0]
        if num_downsampled_vertices is None:
            num_downsampled_vertices = round(SMPLH_NUM_DOWNSAMPLED * num_vertices / SMPLH_NUM_VERTICES)
        start = int(np.random.default_rng(downsample_seed).integers(len(arrays["v_template"])))
        index = np.sort(farthest_point_indices(arrays["v_template"], num_downsampled_vertices, start))
        self.register_buffer("downsample_index", torch.as_tensor(index))
        self._build_subset_tensors()

    def _build_subset_tensors(self) -> None:
        """Precompute the rows of every skinning quantity for the downsampled vertices."""
        smplh = self.smplh
        index = self.downsample_index
        num_vertices = smplh.v_template.shape[0]
        num_pose_basis = smplh.posedirs.shape[0]
        posedirs = smplh.posedirs.reshape(num_pose_basis, num_vertices, 3)[:, index]
        subset = {
            "sub_v_template": smplh.v_template[index],
            "sub_shapedirs": smplh.shapedirs[index],
            "sub_posedirs": posedirs.reshape(num_pose_basis, -1),
            "sub_weights": smplh.lbs_weights[index],
            # Joints are linear in the shape: J = J_regressor (v_template + shapedirs betas).
            "joint_template": smplh.J_regressor @ smplh.v_template,
            "joint_shapedirs": torch.einsum("jv,vck->jck", smplh.J_regressor, smplh.shapedirs),
        }
        # The landmark vertices smplx appends to the joints (its own index buffer, so forward and this agree).
        landmark_index = smplh.vertex_joint_selector.extra_joints_idxs
        subset |= {
            "landmark_v_template": smplh.v_template[landmark_index],
            "landmark_shapedirs": smplh.shapedirs[landmark_index],
            "landmark_posedirs": smplh.posedirs.reshape(num_pose_basis, num_vertices, 3)[:, landmark_index]
            .reshape(num_pose_basis, -1),
            "landmark_weights": smplh.lbs_weights[landmark_index],
        }
        for name, value in subset.items():
            self.register_buffer(name, value.contiguous(), persistent=False)
        self._parents = smplh.parents.clone()
        self._levels = kinematic_levels(self._parents.tolist())
        hand_mean = torch.cat([smplh.left_hand_mean, smplh.right_hand_mean]).reshape(2 * NUM_HAND_JOINTS, 3)
        self.register_buffer("_hand_mean", hand_mean, persistent=False)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._build_subset_tensors()
        return result

    def to(self, *args, **kwargs) -> BodyModel:
        """``torch.nn.Module.to``, except that a dtype below float32 becomes float32.

        The body's buffers are a template mesh, not weights: ``pipe.to(torch.float16)`` halves the networks but
        keeps the body precise (half-precision template vertices are off by millimetres).
        """
        device, dtype, non_blocking, _ = torch._C._nn._parse_to(*args, **kwargs)
        if dtype is None:  # (diffusers warns whenever a `dtype` argument is passed, even None)
            return super().to(device=device, non_blocking=non_blocking)
        return super().to(device=device, dtype=geometry_dtype(dtype), non_blocking=non_blocking)

    @property
    def faces(self) -> torch.Tensor:
        """``(F, 3)`` triangle indices."""
        return self.smplh.faces_tensor

    @property
    def num_vertices(self) -> int:
        return self.smplh.v_template.shape[0]

    @property
    def num_downsampled(self) -> int:
        return self.downsample_index.shape[0]

    def downsample(self, vertices: torch.Tensor) -> torch.Tensor:
        """Select the downsampled subset ``(B, S, 3)`` of full meshes ``(B, V, 3)`` in one gather.

        The subset is a set of real vertices, so this equals multiplying by a 0/1 downsampling matrix.
        """
        if vertices.dim() != 3 or vertices.shape[1:] != (self.num_vertices, 3):
            raise ValueError(f"`vertices` must have shape (B, {self.num_vertices}, 3), got {tuple(vertices.shape)}.")
        return vertices.index_select(1, self.downsample_index)

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype both forwards compute in: the body's own, at least float32."""
        return geometry_dtype(self.sub_v_template.dtype)

    def _full_rotations(self, params: HOIParams) -> torch.Tensor:
        """``(B, 52, 3, 3)`` joint rotations as smplx builds them (the mean hand added in axis-angle)."""
        hands = torch.cat([params.left_hand_pose, params.right_hand_pose], dim=1)
        hands = axis_angle_to_matrix(matrix_to_axis_angle(hands) + self._hand_mean.to(hands))
        return torch.cat([params.global_orient[:, None], params.body_pose, hands], dim=1)

    def forward(self, params: HOIParams, frame: str = "pelvis") -> BodyOutput:
        """Full SMPL-H meshes through smplx.

        Args:
            params: pose and shape (object fields are ignored).
            frame: ``"pelvis"`` puts the pelvis joint at the origin (camera axes); ``"camera"`` adds
                ``params.camera_translation``.

        Returns:
            :class:`BodyOutput` with ``vertices (B, V, 3)``, ``joints (B, 52, 3)``, ``landmarks (B, L, 3)``.
        """
        if frame not in ("pelvis", "camera"):
            raise ValueError(f"`frame` must be 'pelvis' or 'camera', got {frame!r}.")
        dtype = params.dtype
        params = params.to(dtype=self.compute_dtype)
        pose = params.full_pose_axis_angle()
        batch = params.batch_size
        output = self.smplh(
            betas=params.betas,
            global_orient=pose[:, 0],
            body_pose=pose[:, BODY_JOINTS].reshape(batch, -1),
            left_hand_pose=pose[:, LEFT_HAND_JOINTS].reshape(batch, -1),
            right_hand_pose=pose[:, RIGHT_HAND_JOINTS].reshape(batch, -1),
        )
        offset = output.joints[:, :1]
        if frame == "camera":
            offset = offset - params.camera_translation[:, None]
        vertices = output.vertices - offset
        joints = output.joints - offset
        return BodyOutput(
            vertices=vertices.to(dtype),
            joints=joints[:, :NUM_JOINTS].to(dtype),
            landmarks=joints[:, NUM_JOINTS:].to(dtype),
            downsampled_vertices=vertices.index_select(1, self.downsample_index).to(dtype),
        )

    def skin_subset(self, params: HOIParams) -> tuple[torch.Tensor, torch.Tensor]:
        """Skin only the downsampled vertices, pelvis at the origin (camera axes).

        Equal to ``forward(params).downsampled_vertices`` to float precision, without touching the other
        vertices. Differentiable with respect to every field of ``params``. Computed in :attr:`compute_dtype`
        (skinning in half precision is off by millimetres), returned in ``params.dtype``.

        Returns:
            ``(vertices (B, S, 3), joints (B, 52, 3))``.
        """
        dtype = params.dtype
        pose = self._pose(params.to(dtype=self.compute_dtype))
        vertices = self._skin_rows(pose, self.sub_v_template, self.sub_shapedirs, self.sub_posedirs, self.sub_weights)
        pelvis = pose.posed_joints[:, :1]
        return (vertices - pelvis).to(dtype), (pose.posed_joints - pelvis).to(dtype)

    def skin_subset_landmarks(self, params: HOIParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`skin_subset` plus the landmark vertices, from one pass of the kinematics.

        The landmarks equal ``forward(params).landmarks`` to float precision; with the joints they give the
        keypoint reprojection term its points through :func:`blazepose_points`.

        Returns:
            ``(vertices (B, S, 3), joints (B, 52, 3), landmarks (B, 21, 3))``, pelvis at the origin.
        """
        dtype = params.dtype
        pose = self._pose(params.to(dtype=self.compute_dtype))
        vertices = self._skin_rows(pose, self.sub_v_template, self.sub_shapedirs, self.sub_posedirs, self.sub_weights)
        landmarks = self._skin_rows(
            pose, self.landmark_v_template, self.landmark_shapedirs, self.landmark_posedirs, self.landmark_weights
        )
        pelvis = pose.posed_joints[:, :1]
        return (vertices - pelvis).to(dtype), (pose.posed_joints - pelvis).to(dtype), (landmarks - pelvis).to(dtype)

    def _pose(self, params: HOIParams) -> _Pose:
        """Shape, pose-corrective features and posed skeleton of ``params`` (already in :attr:`compute_dtype`)."""
        batch = params.batch_size
        rotations = self._full_rotations(params)
        betas = params.betas
        rest_joints = self.joint_template + torch.einsum("jck,bk->bjc", self.joint_shapedirs, betas)
        eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
        pose_feature = (rotations[:, 1:] - eye).reshape(batch, -1)
        world_rotations, posed_joints = forward_kinematics(rotations, rest_joints, self._parents, self._levels)
        return _Pose(betas, pose_feature, rest_joints, world_rotations, posed_joints)

    @staticmethod
    def _skin_rows(
        pose: _Pose, template: torch.Tensor, shapedirs: torch.Tensor, posedirs: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """Linear blend skinning of a fixed set of mesh rows ``(B, R, 3)``, in the skeleton's frame."""
        batch = pose.betas.shape[0]
        shaped = template + torch.einsum("sck,bk->bsc", shapedirs, pose.betas)
        posed = shaped + (pose.pose_feature @ posedirs).reshape(batch, -1, 3)
        return skin_points(posed, weights, pose.world_rotations, pose.posed_joints, pose.rest_joints)


@dataclass
class _Pose:
    """What skinning any set of mesh rows needs from one set of parameters (see ``BodyModel._pose``)."""

    betas: torch.Tensor  # (B, 10)
    pose_feature: torch.Tensor  # (B, 51 * 9) rotation minus identity, the pose-corrective blend input
    rest_joints: torch.Tensor  # (B, 52, 3)
    world_rotations: torch.Tensor  # (B, 52, 3, 3)
    posed_joints: torch.Tensor  # (B, 52, 3)
