"""One reconstruction as SMPL-H parameters that smplx alone turns back into the same camera-space meshes.

:func:`smplh_arrays` gives the arrays :func:`~scorehoi_diffusers.export.export_reconstruction` writes to
``{name}_smplh.npz``. With ``body = smplx.SMPLH(model_path, gender=gender, use_pca=False,
flat_hand_mean=False, num_betas=10)``, ``body(betas=betas[None], global_orient=global_orient[None],
body_pose=body_pose[None], left_hand_pose=left_hand_pose[None], right_hand_pose=right_hand_pose[None],
transl=transl[None]).vertices`` is the pipeline's ``body_vertices`` in camera space, and
``object_vertices = template_vertices @ object_R.T + object_t``.

Keys (float arrays are float64; the README's "Exports" section has the same list as a table):

- ``poses`` ``(156,)``: SMPL-H axis-angle pose in smplx's order: global 3, body 63 (21 joints), left hand 45,
  right hand 45.
- ``global_orient`` ``(3,)``, ``body_pose`` ``(63,)``, ``left_hand_pose`` ``(45,)``, ``right_hand_pose``
  ``(45,)``: ``poses`` split as smplx's forward takes it.
- ``flat_hand_mean`` ``()`` bool, ``False``: the hand poses are offsets from SMPL-H's mean hand, as smplx reads
  them with ``flat_hand_mean=False``.
- ``betas`` ``(10,)``: shape coefficients.
- ``transl`` ``(3,)``: smplx's ``transl``, ``camera_translation`` less the rest pelvis joint of ``betas``.
- ``camera_translation`` ``(3,)``: the pelvis joint in camera space, metres.
- ``gender`` ``()`` str: ``"neutral"``, ``"male"`` or ``"female"``.
- ``model_path`` ``()`` str: the SMPL-H ``.npz`` the body was built from (the stand-in's file for the stand-in).
- ``object_R`` ``(3, 3)``, ``object_t`` ``(3,)``: object template to camera, ``R @ q + t``, metres.
- ``intrinsics`` ``(3, 3)``: the picture's camera matrix (absent when the pipeline had none).
- ``human_contact`` ``(S,)``: contact probability of each downsampled body vertex, ``body_downsample_index``
  ``(S,)`` the body vertex of each entry.
- ``object_contact`` ``(M,)``: contact probability of each object keypoint.
- ``floor_contact`` ``()``: probability that the object rests on the floor.

smplx poses its root joint about the rest pelvis joint ``J_0(betas)`` and then adds ``transl``, so its pelvis ends up
at ``J_0 + transl``; the pipeline places the pelvis at ``camera_translation``, hence ``transl = camera_translation -
J_0``.
"""
from __future__ import annotations

import numpy as np
import torch

from .body import BodyModel, resolve_body_file
from .contacts import Contacts
from .params import HOIParams
from .skeleton import BODY_JOINTS, LEFT_HAND_JOINTS, RIGHT_HAND_JOINTS

__all__ = ["smplh_arrays"]


def _body_file(body: BodyModel) -> str:
    if body.config.model_path is None:
        from .standin_body import STANDIN_BODY_PATH

        return str(STANDIN_BODY_PATH)
    return str(resolve_body_file(body.config.model_path, body.config.gender))


def smplh_arrays(
    params: HOIParams,
    index: int,
    body: BodyModel,
    contacts: Contacts | None = None,
    intrinsics: torch.Tensor | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Sample ``index`` of ``params`` as the arrays of the SMPL-H ``.npz`` export (keys in the module docstring).

    Args:
        params: the reconstruction (e.g. a ``output_type="pt"`` pipeline output's ``params``).
        index: which sample of the batch.
        body: the body model the reconstruction used.
        contacts: its contacts, or ``None`` to leave the contact keys out.
        intrinsics: ``(3, 3)`` camera matrix, or ``None`` to leave it out.

    Returns:
        ``{key: array}`` in float64 (``poses`` and the other float arrays), ready for ``numpy.savez``.
    """
    if not isinstance(params, HOIParams):
        raise TypeError(f"`params` must be HOIParams (a pipeline output with output_type='pt'), got {type(params)}.")
    if not isinstance(index, int) or not 0 <= index < params.batch_size:
        raise ValueError(f"`index` must be an integer in 0..{params.batch_size - 1}, got {index!r}.")
    sample = params[index]
    with torch.no_grad():
        pose = sample.full_pose_axis_angle()[0]
        # smplx's pelvis before `transl`: the same forward `BodyModel.forward` subtracts it from.
        rest_pelvis = body.smplh(
            betas=sample.betas,
            global_orient=pose[None, 0],
            body_pose=pose[None, BODY_JOINTS].reshape(1, -1),
            left_hand_pose=pose[None, LEFT_HAND_JOINTS].reshape(1, -1),
            right_hand_pose=pose[None, RIGHT_HAND_JOINTS].reshape(1, -1),
        ).joints[0, 0]

    def numpy(value: torch.Tensor) -> np.ndarray:
        return value.detach().cpu().to(torch.float64).numpy()

    arrays = {
        "poses": numpy(pose.reshape(-1)),
        "global_orient": numpy(pose[0]),
        "body_pose": numpy(pose[BODY_JOINTS].reshape(-1)),
        "left_hand_pose": numpy(pose[LEFT_HAND_JOINTS].reshape(-1)),
        "right_hand_pose": numpy(pose[RIGHT_HAND_JOINTS].reshape(-1)),
        "flat_hand_mean": np.array(False),
        "betas": numpy(sample.betas[0]),
        "transl": numpy(sample.camera_translation[0] - rest_pelvis),
        "camera_translation": numpy(sample.camera_translation[0]),
        "gender": np.array(body.config.gender),
        "model_path": np.array(_body_file(body)),
        "object_R": numpy(sample.object_rotation[0]),
        "object_t": numpy(sample.object_translation[0] + sample.camera_translation[0]),
    }
    if intrinsics is not None:
        arrays["intrinsics"] = np.asarray(intrinsics.detach().cpu() if torch.is_tensor(intrinsics) else intrinsics,
                                          dtype=np.float64).reshape(3, 3)
    if contacts is not None:
        arrays.update({
            "human_contact": numpy(contacts.human[index]),
            "body_downsample_index": body.downsample_index.cpu().numpy().astype(np.int64),
            "object_contact": numpy(contacts.object[index]),
            "floor_contact": numpy(contacts.floor[index]),
        })
    return arrays
