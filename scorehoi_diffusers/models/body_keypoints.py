"""Detected 2D body keypoints as model input: crop-normalised BlazePose landmarks and their encoder.

The regressor and the denoiser read the 33 BlazePose landmarks of a detector (or simulated detections, see
:mod:`scorehoi_diffusers.data.simulated_detections`) as ``(B, 33, 3)`` ``(x, y, visibility)`` in the crop's
``grid_sample`` coordinates (-1 and 1 are the outer edges of the border pixels, 0 the crop centre), so the input
does not depend on the picture's size. Landmarks outside the crop, and those a detector did not report
(visibility 0), are all-zero rows; no keypoints at all is the all-zero ``(B, 33, 3)``, the same as a person
the detector missed.
"""
import torch
from torch import nn

from ..camera import move_pixels
from ..input_checks import check_tensor
from ..skeleton import NUM_BLAZEPOSE

__all__ = ["BodyKeypointEncoder", "crop_keypoints", "image_to_crop_keypoints", "no_keypoints", "with_body_keypoints"]

# Fourier bands of the landmark coordinates (periods 2 down to 2 / 2^3 of the crop side).
_NUM_FREQUENCIES = 4


def crop_keypoints(keypoints: torch.Tensor, crop_size: tuple[int, int]) -> torch.Tensor:
    """Landmarks in crop pixels to the models' input: crop-normalised coordinates, zero rows outside the crop.

    Args:
        keypoints: ``(B, 33, 3)`` ``(u, v, visibility)`` in crop pixels (pixel centres at integer coordinates).
        crop_size: ``(H, W)`` of the crop.

    Returns:
        ``(B, 33, 3)`` ``(x, y, visibility)``, ``x, y`` in [-1, 1].
    """
    check_tensor("keypoints", keypoints, (None, NUM_BLAZEPOSE, 3), f"(B, {NUM_BLAZEPOSE}, 3)", finite=True)
    height, width = crop_size
    x = (keypoints[..., 0] + 0.5) * 2 / width - 1
    y = (keypoints[..., 1] + 0.5) * 2 / height - 1
    visibility = keypoints[..., 2].clamp(0.0, 1.0)
    inside = (x.abs() <= 1) & (y.abs() <= 1) & (visibility > 0)
    return torch.stack([x, y, visibility], dim=-1) * inside[..., None]


def image_to_crop_keypoints(keypoints: torch.Tensor, intrinsics: torch.Tensor, crop_intrinsics: torch.Tensor,
                            crop_size: tuple[int, int]) -> torch.Tensor:
    """Detected landmarks in the original picture's pixels to the models' input for an unrotated crop.

    The crop of :class:`~scorehoi_diffusers.image_processor.HOIImageBatch` keeps the camera's axes, so a picture
    pixel ``p`` goes to the crop pixel ``K' K^-1 p`` (``K'`` the crop's intrinsics, ``K`` the picture's).

    Args:
        keypoints: ``(B, 33, 3)`` ``(u, v, visibility)`` in picture pixels, BlazePose order.
        intrinsics: ``(B, 3, 3)`` the pictures' camera matrices.
        crop_intrinsics: ``(B, 3, 3)`` the crops' camera matrices.
        crop_size: ``(H, W)`` of the crops.

    Returns:
        ``(B, 33, 3)`` as :func:`crop_keypoints`.
    """
    batch = keypoints.shape[0] if isinstance(keypoints, torch.Tensor) else None
    check_tensor("keypoints", keypoints, (None, NUM_BLAZEPOSE, 3), f"(B, {NUM_BLAZEPOSE}, 3)", finite=True)
    check_tensor("intrinsics", intrinsics, (batch, 3, 3), f"({batch}, 3, 3)", finite=True)
    check_tensor("crop_intrinsics", crop_intrinsics, (batch, 3, 3), f"({batch}, 3, 3)", finite=True)
    moved = move_pixels(keypoints[..., :2], intrinsics, crop_intrinsics)  # float64
    in_crop = torch.cat([moved, keypoints[..., 2:].to(moved.dtype)], dim=-1)
    return crop_keypoints(in_crop, crop_size).to(keypoints.dtype)


def no_keypoints(batch: int, like: torch.Tensor) -> torch.Tensor:
    """``(batch, 33, 3)`` zeros: no person detected (the input when no keypoints are given)."""
    return like.new_zeros(batch, NUM_BLAZEPOSE, 3)


class BodyKeypointEncoder(nn.Module):
    """All 33 landmarks of a sample to one feature vector ``(B, out_features)``.

    Each landmark's position is Fourier-encoded and weighted by its visibility, then the flat vector of all
    landmarks (their order says which landmark is which, so left and right stay apart) goes through an MLP whose
    last layer starts at zero: a model that gains this encoder computes exactly what it did without it until
    training moves that layer.

    Args:
        hidden_features: width of the MLP's hidden layer.
        out_features: width of the output.
    """

    def __init__(self, hidden_features: int, out_features: int):
        super().__init__()
        per_landmark = 2 * (1 + 2 * _NUM_FREQUENCIES) + 1
        self.mlp = nn.Sequential(
            nn.Linear(NUM_BLAZEPOSE * per_landmark, hidden_features),
            nn.GELU(),
            nn.Linear(hidden_features, hidden_features),
            nn.GELU(),
            nn.Linear(hidden_features, out_features),
        )
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.mlp[-1].weight)

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        """``(B, 33, 3)`` crop-normalised ``(x, y, visibility)`` -> ``(B, out_features)``."""
        xy, visibility = keypoints[..., :2], keypoints[..., 2:]
        frequencies = torch.pi * 2.0 ** torch.arange(_NUM_FREQUENCIES, device=xy.device, dtype=xy.dtype)
        angles = (xy[..., None] * frequencies).flatten(-2)
        encoded = torch.cat([xy, angles.sin(), angles.cos()], dim=-1) * visibility
        return self.mlp(torch.cat([encoded, visibility], dim=-1).flatten(1))


def with_body_keypoints(model: nn.Module) -> nn.Module:
    """A copy of a regressor or denoiser built without keypoint input, with it added (config `body_keypoints`).

    Every weight is copied; only the new encoder's are fresh, and its last layer starts at zero, so the copy
    computes exactly what ``model`` does (with or without keypoints) until training moves that layer: the warm start
    of keypoint training from weights trained without keypoints. A model that already reads keypoints is returned
    as it is.
    """
    config = dict(getattr(model, "config", {}))
    if "body_keypoints" not in config:
        raise TypeError(f"`model` must be a ScoreHOIRegressor or ScoreHOIDenoiser, got {type(model).__name__}.")
    if config["body_keypoints"]:
        return model
    arguments = {key: value for key, value in config.items() if not key.startswith("_")}
    extended = type(model)(**{**arguments, "body_keypoints": True}).to(model.device)
    if extended.dtype != model.dtype:
        extended = extended.to(model.dtype)
    missing, unexpected = extended.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not key.startswith("body_keypoint_encoder.") for key in missing):
        raise ValueError(f"Unexpected weight layout while adding keypoint input: missing {missing}, "
                         f"unexpected {unexpected}.")
    return extended.train(model.training)
