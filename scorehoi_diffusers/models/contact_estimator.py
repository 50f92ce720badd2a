"""ScoreHOIContactEstimator: learned human, object and floor contacts from the current reconstruction and the image.

One token per downsampled body vertex and per object keypoint, plus one floor token. A point token is built from

- its position (pelvis-relative, camera axes), Fourier-encoded;
- its distance to the nearest point of the other set (body -> object keypoints, keypoint -> body), radial-basis
  encoded: the geometric evidence a proximity rule would use, given explicitly;
- the image feature at its projection into the crop (camera space = pelvis-relative + camera translation, projected
  with the crop intrinsics, sampled bilinearly from the regressor's feature map);
- for body tokens, a learned embedding of the vertex identity (which part of the body it is).

The floor token carries the mean image feature. A transformer mixes all tokens; linear heads give per-token logits.
The pipeline calls ``estimator(state) -> Contacts`` after every refinement cycle: :meth:`ScoreHOIContactEstimator.bind`
fixes the image evidence of one batch and returns such a callable.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from ..camera import project_points
from ..contacts import Contacts, ReconstructionState
from ..input_checks import check_tensor
from ..strict_config import StrictConfigMixin
from .aligned_loading import AlignedLoadingMixin
from .regressor import fourier_features, pre_norm_transformer

__all__ = [
    "ScoreHOIContactEstimator",
    "ContactEstimatorOutput",
    "BoundContactEstimator",
    "sample_image_features",
    "ModelMixin",
]


def sample_image_features(
    feature_map: torch.Tensor, points_camera: torch.Tensor, intrinsics: torch.Tensor, image_size: tuple[int, int]
) -> torch.Tensor:
    """Bilinear samples ``(B, N, C)`` of a feature map at the projections of camera-space points.

    The feature map ``(B, C, h, w)`` covers the ``(H, W)`` crop the intrinsics describe (OpenCV pixel centres at
    integers), so pixel ``p`` sits at ``grid_sample`` coordinate ``(p + 0.5) * 2 / W - 1`` with
    ``align_corners=False``. Points projecting outside the crop, or behind the camera, get zero features.
    """
    height, width = image_size
    pixels = project_points(points_camera, intrinsics)  # (B, N, 2)
    grid = (pixels + 0.5) * 2 / pixels.new_tensor([width, height]) - 1
    # Behind the camera the clamped-depth projection can land anywhere; send those points off the map.
    grid = torch.where(points_camera[..., 2:] > 0, grid, torch.full_like(grid, 2.0))
    sampled = F.grid_sample(feature_map, grid[:, None], mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled[:, :, 0].transpose(1, 2)


@dataclass
class ContactEstimatorOutput(BaseOutput):
    """
    Output of [`ScoreHOIContactEstimator`].

    Args:
        human_logits (`torch.Tensor` of shape `(B, S)`): per downsampled body vertex (for BCE-with-logits training).
        object_logits (`torch.Tensor` of shape `(B, M)`): per object keypoint.
        floor_logits (`torch.Tensor` of shape `(B,)`): the object rests on the floor.
        contacts ([`Contacts`]): the same as probabilities (sigmoid of the logits).
    """

    human_logits: torch.Tensor
    object_logits: torch.Tensor
    floor_logits: torch.Tensor
    contacts: Contacts


class ScoreHOIContactEstimator(StrictConfigMixin, AlignedLoadingMixin, ModelMixin, ConfigMixin):
    """
    Transformer contact estimator over downsampled-body tokens and object-keypoint tokens with sampled image features.

    Args:
        num_body_points (`int`, defaults to 431): S, the body model's downsampled vertex count
            (`BodyModel.num_downsampled`; 431 for real SMPL-H); one learned embedding per vertex.
        feature_dim (`int`, defaults to 256): channels C of the regressor's feature map (its `hidden_sizes[-1]`).
        hidden_size (`int`, defaults to 128): token width.
        num_layers (`int`, defaults to 2): transformer layers.
        num_attention_heads (`int`, defaults to 4): attention heads.
        mlp_ratio (`float`, defaults to 2.0): MLP width over `hidden_size`.
        num_frequencies (`int`, defaults to 8): Fourier bands of the point positions.
        position_scale (`float`, defaults to 2.0): metres mapped to ±1 before the position encoding.
        distance_scales (`tuple[float]`, defaults to `(0.02, 0.05, 0.1, 0.3)`): metres; a nearest-point distance `d`
            is encoded as `exp(-d / s)` for each scale `s`.
        contact_prior (`float`, defaults to 0.05): initial human and object contact probability (contacts are
            sparse; starting there keeps early BCE gradients balanced and an untrained model's guidance mild).
    """

    @register_to_config
    def __init__(
        self,
        num_body_points: int = 431,
        feature_dim: int = 256,
        hidden_size: int = 128,
        num_layers: int = 2,
        num_attention_heads: int = 4,
        mlp_ratio: float = 2.0,
        num_frequencies: int = 8,
        position_scale: float = 2.0,
        distance_scales: tuple[float, ...] = (0.02, 0.05, 0.1, 0.3),
        contact_prior: float = 0.05,
    ):
        super().__init__()
        if num_body_points < 1:
            raise ValueError(f"`num_body_points` must be positive, got {num_body_points}.")
        if hidden_size % num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size`={hidden_size} must be divisible by `num_attention_heads`={num_attention_heads}."
            )
        if not 0 < contact_prior < 1:
            raise ValueError(f"`contact_prior` must be in (0, 1), got {contact_prior}.")
        if not distance_scales or min(distance_scales) <= 0:
            raise ValueError(f"`distance_scales` must be positive, got {tuple(distance_scales)}.")

        point_dim = 3 * (1 + 2 * num_frequencies) + len(distance_scales) + hidden_size
        self.feature_in = nn.Sequential(nn.LayerNorm(feature_dim), nn.Linear(feature_dim, hidden_size))
        self.body_in = nn.Linear(point_dim, hidden_size)
        self.object_in = nn.Linear(point_dim, hidden_size)
        self.vertex_embedding = nn.Parameter(torch.zeros(num_body_points, hidden_size))
        self.floor_token = nn.Parameter(torch.zeros(hidden_size))
        self.transformer = pre_norm_transformer(hidden_size, num_attention_heads, mlp_ratio, num_layers)
        self.human_head = nn.Linear(hidden_size, 1)
        self.object_head = nn.Linear(hidden_size, 1)
        self.floor_head = nn.Linear(hidden_size, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.vertex_embedding, std=0.02)
        nn.init.normal_(self.floor_token, std=0.02)
        prior = math.log(self.config.contact_prior / (1 - self.config.contact_prior))
        nn.init.constant_(self.human_head.bias, prior)
        nn.init.constant_(self.object_head.bias, prior)

    def _distance_features(self, distance: torch.Tensor) -> torch.Tensor:
        scales = torch.tensor(self.config.distance_scales, device=distance.device, dtype=distance.dtype)
        return torch.exp(-distance[..., None] / scales)

    def forward(
        self,
        body_points: torch.Tensor,
        object_points: torch.Tensor,
        camera_translation: torch.Tensor,
        intrinsics: torch.Tensor,
        feature_map: torch.Tensor,
        image_size: tuple[int, int],
        return_dict: bool = True,
    ) -> ContactEstimatorOutput | tuple:
        """
        Estimates contacts of a batch of reconstructions.

        Args:
            body_points (`torch.Tensor` of shape `(B, S, 3)`): downsampled body vertices, pelvis at the origin,
                camera axes (`BodyModel.skin_subset`); S must equal the config's `num_body_points`.
            object_points (`torch.Tensor` of shape `(B, M, 3)`): posed object keypoints, same frame (M = 64 usually).
            camera_translation (`torch.Tensor` of shape `(B, 3)`): pelvis position in camera space.
            intrinsics (`torch.Tensor` of shape `(B, 3, 3)`): pinhole matrix of the crop the feature map comes from.
            feature_map (`torch.Tensor` of shape `(B, C, h, w)`): the regressor's `feature_map`.
            image_size (`tuple[int, int]`): `(H, W)` of that crop in pixels.
            return_dict (`bool`, defaults to `True`): return a [`ContactEstimatorOutput`] or a tuple.

        Returns:
            [`ContactEstimatorOutput`] or `(human_logits, object_logits, floor_logits, contacts)`.
        """
        num_body = self.config.num_body_points
        check_tensor("body_points", body_points, (None, None, 3), f"(B, {num_body}, 3)", finite=True)
        batch = body_points.shape[0]
        if body_points.shape[1] != num_body:
            raise ValueError(
                f"`body_points` has {body_points.shape[1]} points, but this estimator was built for "
                f"num_body_points={num_body}; build it with `num_body_points=body_model.num_downsampled` "
                "for the body model in use."
            )
        check_tensor("object_points", object_points, (batch, None, 3), f"({batch}, M, 3)", finite=True)
        check_tensor("camera_translation", camera_translation, (batch, 3), f"({batch}, 3)", finite=True)
        check_tensor("intrinsics", intrinsics, (batch, 3, 3), f"({batch}, 3, 3)", finite=True)
        channels = self.config.feature_dim
        check_tensor(
            "feature_map", feature_map, (batch, channels, None, None), f"({batch}, {channels}, h, w)", finite=True
        )
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"`image_size` must be (H, W) in pixels, got {tuple(image_size)}.")
        dtype = self.dtype
        body_points, object_points, camera_translation, intrinsics, feature_map = (
            t.to(dtype) for t in (body_points, object_points, camera_translation, intrinsics, feature_map)
        )

        distance = torch.cdist(body_points, object_points)  # (B, S, M)
        points = torch.cat([body_points, object_points], dim=1)  # (B, S + M, 3)
        nearest = torch.cat([distance.amin(dim=2), distance.amin(dim=1)], dim=1)  # (B, S + M)
        sampled = sample_image_features(feature_map, points + camera_translation[:, None], intrinsics, image_size)
        features = torch.cat(
            [
                fourier_features(points, self.config.num_frequencies, self.config.position_scale),
                self._distance_features(nearest),
                self.feature_in(sampled),
            ],
            dim=-1,
        )
        body = self.body_in(features[:, :num_body]) + self.vertex_embedding
        objects = self.object_in(features[:, num_body:])
        floor = self.floor_token + self.feature_in(feature_map.mean(dim=(2, 3)))
        tokens = self.transformer(torch.cat([floor[:, None], body, objects], dim=1))

        floor_logits = self.floor_head(tokens[:, 0])[:, 0]
        human_logits = self.human_head(tokens[:, 1 : 1 + num_body])[..., 0]
        object_logits = self.object_head(tokens[:, 1 + num_body :])[..., 0]
        contacts = Contacts(human=human_logits.sigmoid(), object=object_logits.sigmoid(), floor=floor_logits.sigmoid())
        if not return_dict:
            return (human_logits, object_logits, floor_logits, contacts)
        return ContactEstimatorOutput(
            human_logits=human_logits, object_logits=object_logits, floor_logits=floor_logits, contacts=contacts
        )

    def bind(
        self, feature_map: torch.Tensor, intrinsics: torch.Tensor, image_size: tuple[int, int]
    ) -> "BoundContactEstimator":
        """
        Fixes the image evidence of one batch; the result is the pipeline's `contact_estimator(state) -> Contacts`.

        Args:
            feature_map (`torch.Tensor` of shape `(B, C, h, w)`): the regressor's `feature_map` for the batch.
            intrinsics (`torch.Tensor` of shape `(B, 3, 3)`): the crop's pinhole matrix.
            image_size (`tuple[int, int]`): `(H, W)` of the crop.
        """
        return BoundContactEstimator(self, feature_map, intrinsics, image_size)


class BoundContactEstimator:
    """
    A [`ScoreHOIContactEstimator`] with one batch's image evidence fixed: `estimator(state) -> Contacts`.

    Called by the pipeline on every new reconstruction (`state.body_points`, `state.object_points`,
    `state.params.camera_translation`). Runs without gradients; returns probabilities on the state's device and dtype.
    """

    def __init__(
        self,
        model: ScoreHOIContactEstimator,
        feature_map: torch.Tensor,
        intrinsics: torch.Tensor,
        image_size: tuple[int, int],
    ):
        if not isinstance(model, ScoreHOIContactEstimator):
            raise TypeError(f"`model` must be a ScoreHOIContactEstimator, got {type(model).__name__}.")
        check_tensor("feature_map", feature_map, (None, model.config.feature_dim, None, None),
                      f"(B, {model.config.feature_dim}, h, w)", finite=True)
        batch = feature_map.shape[0]
        check_tensor("intrinsics", intrinsics, (batch, 3, 3), f"({batch}, 3, 3)", finite=True)
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"`image_size` must be (H, W) in pixels, got {tuple(image_size)}.")
        self.model = model
        self.feature_map = feature_map.detach().to(device=model.device, dtype=model.dtype)
        self.intrinsics = intrinsics.detach().to(device=model.device, dtype=model.dtype)
        self.image_size = (int(image_size[0]), int(image_size[1]))

    def __call__(self, state: ReconstructionState) -> Contacts:
        if not isinstance(state, ReconstructionState):
            raise TypeError(f"`state` must be a ReconstructionState, got {type(state).__name__}.")
        batch = self.feature_map.shape[0]
        if state.body_points.shape[0] != batch:
            raise ValueError(
                f"`state` has batch size {state.body_points.shape[0]}, but the bound feature map has {batch}; "
                "bind the regressor output of the same batch."
            )
        device, dtype = self.model.device, self.model.dtype
        with torch.no_grad():
            contacts = self.model(
                state.body_points.to(device=device, dtype=dtype),
                state.object_points.to(device=device, dtype=dtype),
                state.params.camera_translation.to(device=device, dtype=dtype),
                self.intrinsics,
                self.feature_map,
                self.image_size,
            ).contacts
        return contacts.to(device=state.body_points.device, dtype=state.body_points.dtype)
