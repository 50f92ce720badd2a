"""The one sample schema every data source yields (synthetic scenes, BEHAVE, InterCap).

A sample is a flat dict of numbers, images and strings so that it stores as Arrow in a
``datasets.Dataset``; :func:`sample_to_params` and :func:`params_to_fields` convert to and from
:class:`~scorehoi_diffusers.params.HOIParams`.

Fields (shapes per sample):
    image ``datasets.Image`` RGB; human_mask, object_mask ``datasets.Image`` (mode "L", 255 = inside);
    intrinsics (3, 3) pinhole K of ``image``; bbox (4,) ``x, y, w, h`` in pixels around human and object;
    pose (156,) SMPL-H axis-angle: root, 21 body joints, 15 left-hand and 15 right-hand joints (hands
    relative to the mean hand, smplx ``flat_hand_mean=False``); betas (10,);
    object_rotation (3, 3); object_translation (3,) relative to the pelvis, camera axes;
    camera_translation (3,) pelvis position in camera space;
    human_contact (S,) per downsampled body vertex of the body model used; object_contact (64,) per object
    keypoint; floor_contact () object rests on the floor;
    object_name, gender, source ("synthetic" | "behave" | "intercap"), sample_id.
"""
from __future__ import annotations

from collections.abc import Mapping

import datasets
import numpy as np
import torch

from ..params import NUM_BETAS, HOIParams, axis_angle_to_matrix
from ..skeleton import BODY_JOINTS, LEFT_HAND_JOINTS, NUM_JOINTS, RIGHT_HAND_JOINTS

NUM_POSE_VALUES = NUM_JOINTS * 3

FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "human_mask": datasets.Image(),
        "object_mask": datasets.Image(),
        "intrinsics": datasets.Array2D((3, 3), "float32"),
        "bbox": datasets.Sequence(datasets.Value("float32"), length=4),
        "pose": datasets.Sequence(datasets.Value("float32"), length=NUM_POSE_VALUES),
        "betas": datasets.Sequence(datasets.Value("float32"), length=NUM_BETAS),
        "object_rotation": datasets.Array2D((3, 3), "float32"),
        "object_translation": datasets.Sequence(datasets.Value("float32"), length=3),
        "camera_translation": datasets.Sequence(datasets.Value("float32"), length=3),
        "human_contact": datasets.Sequence(datasets.Value("float32")),
        "object_contact": datasets.Sequence(datasets.Value("float32"), length=64),
        "floor_contact": datasets.Value("float32"),
        "object_name": datasets.Value("string"),
        "gender": datasets.Value("string"),
        "source": datasets.Value("string"),
        "sample_id": datasets.Value("string"),
    }
)

PARAM_FIELDS = ("pose", "betas", "object_rotation", "object_translation", "camera_translation")


def sample_to_params(sample: Mapping[str, object]) -> HOIParams:
    """Parameter fields of one sample or a batch (leading dimension B) to :class:`HOIParams`."""
    missing = [name for name in PARAM_FIELDS if name not in sample]
    if missing:
        raise KeyError(f"The sample lacks the parameter fields {missing}.")
    values = {name: torch.as_tensor(np.asarray(sample[name]), dtype=torch.float32) for name in PARAM_FIELDS}
    if values["pose"].dim() == 1:
        values = {name: value[None] for name, value in values.items()}
    pose = values["pose"]
    if pose.shape[-1] != NUM_POSE_VALUES:
        raise ValueError(f"Sample field 'pose' must have {NUM_POSE_VALUES} values, got {pose.shape[-1]}.")
    rotations = axis_angle_to_matrix(pose.reshape(pose.shape[0], NUM_JOINTS, 3))
    return HOIParams(
        global_orient=rotations[:, 0],
        body_pose=rotations[:, BODY_JOINTS],
        left_hand_pose=rotations[:, LEFT_HAND_JOINTS],
        right_hand_pose=rotations[:, RIGHT_HAND_JOINTS],
        betas=values["betas"],
        object_rotation=values["object_rotation"],
        object_translation=values["object_translation"],
        camera_translation=values["camera_translation"],
    )


def params_to_fields(params: HOIParams) -> dict[str, np.ndarray]:
    """:class:`HOIParams` to the schema's parameter fields, each with a leading batch dimension."""
    return {
        "pose": params.full_pose_axis_angle().reshape(params.batch_size, -1).detach().cpu().numpy().astype(np.float32),
        "betas": params.betas.detach().cpu().numpy().astype(np.float32),
        "object_rotation": params.object_rotation.detach().cpu().numpy().astype(np.float32),
        "object_translation": params.object_translation.detach().cpu().numpy().astype(np.float32),
        "camera_translation": params.camera_translation.detach().cpu().numpy().astype(np.float32),
    }
