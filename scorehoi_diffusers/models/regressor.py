"""ScoreHOIRegressor: a 5-channel crop (RGB + human mask + object mask) and object keypoints -> initial estimate.

A `transformers` ResNet, built from a config and trained by us (nothing is downloaded), turns the crop into a feature
map (``(B, C, H/32, W/32)``, 8 x 8 for a 256² crop). Its cells become image tokens with a 2D position encoding; the
object's template keypoints become keypoint tokens; a small transformer fuses both with a few learned query tokens.
The queries feed two heads:

- the diffusion vector ``x0 (B, 331)`` directly (``HOIParamCodec`` layout: 6D rotations, pelvis-relative object
  translation, normalised betas); the last layer starts with tiny weights and a bias equal to the rest pose (identity
  rotations, hands at the mean hand, object at the pelvis, betas at the middle of their range), so an untrained model
  predicts the rest pose;
- the camera translation (pelvis position in camera space) in a crop-relative form, see
  :func:`crop_to_camera_translation`.

With ``body_keypoints=True`` the regressor also reads detected 2D body keypoints (the 33 BlazePose landmarks,
crop-normalised, see :mod:`~scorehoi_diffusers.models.body_keypoints`): their encoding is added to the query tokens
before the fusion, through a last layer that starts at zero, so a warm start from a model without them begins as
that model.

The fused image tokens ``(B, Ni, image_feature_dim)`` are the denoiser's image condition, and the feature map is what
:class:`~scorehoi_diffusers.models.contact_estimator.ScoreHOIContactEstimator` samples at projected points.

The backbone uses BatchNorm: in training mode a sample's output depends on the rest of its batch; in eval mode (the
default after ``from_pretrained``) every sample is processed independently.
"""

import math
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn
from transformers import ResNetConfig, ResNetModel

from ..input_checks import check_tensor
from ..params import NUM_BODY_JOINTS, NUM_HAND_JOINTS, OBJECT_ROTATION_SLICE, X0_DIM
from ..strict_config import StrictConfigMixin
from .aligned_loading import AlignedLoadingMixin
from .body_keypoints import BodyKeypointEncoder, no_keypoints

__all__ = [
    "ScoreHOIRegressor",
    "ScoreHOIRegressorOutput",
    "crop_to_camera_translation",
    "rest_pose_x0",
    "camera_translation_to_crop",
    "fourier_features",
    "ModelMixin",
]

IDENTITY_6D = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def rest_pose_x0() -> torch.Tensor:
    """``(331,)`` x0 of the rest pose: identity rotations, object at the pelvis, betas 0 (middle of their range)."""
    x0 = torch.zeros(X0_DIM)
    num_rotations = 1 + NUM_BODY_JOINTS + 2 * NUM_HAND_JOINTS
    x0[: 6 * num_rotations] = torch.tensor(IDENTITY_6D).repeat(num_rotations)
    x0[OBJECT_ROTATION_SLICE] = torch.tensor(IDENTITY_6D)
    return x0


def fourier_features(points: torch.Tensor, num_frequencies: int, scale: float) -> torch.Tensor:
    """NeRF-style encoding of coordinates ``(..., D)`` to ``(..., D * (1 + 2 * num_frequencies))``.

    Coordinates are divided by ``scale`` (the extent that maps to ±1); frequency ``k`` is ``π 2^k``, so the coarsest
    band has period ``2 * scale`` and the finest ``2 * scale / 2^(num_frequencies - 1)``.
    """
    unit = points / scale
    frequencies = math.pi * 2.0 ** torch.arange(num_frequencies, device=points.device, dtype=points.dtype)
    angles = (unit[..., None] * frequencies).flatten(-2)  # (..., D * L)
    return torch.cat([unit, angles.sin(), angles.cos()], dim=-1)


def crop_to_camera_translation(
    camera_crop: torch.Tensor, intrinsics: torch.Tensor, image_size: tuple[int, int], extent_prior: float
) -> torch.Tensor:
    """Crop-relative camera parameters ``(B, 3)`` to the pelvis position in camera space ``(B, 3)`` (metres).

    ``camera_crop = (u, v, log_extent)``: ``(u, v)`` is where the pelvis projects, in ``grid_sample`` coordinates of
    the crop (``align_corners=False``: -1 and 1 are the outer edges of the border pixels, 0 the crop centre), and
    ``extent = extent_prior * exp(log_extent)`` is the width in metres that the crop spans at the pelvis depth, so
    ``z = extent * fx / W``. Because a crop is cut around the person and object, both ``(u, v)`` and the extent stay
    near 0 and 1 × prior whatever the image's focal length or the person's distance: a well-conditioned target.

    Args:
        camera_crop: ``(B, 3)`` ``(u, v, log_extent)``.
        intrinsics: ``(B, 3, 3)`` pinhole matrices of the crop (OpenCV: pixel centres at integer coordinates).
        image_size: ``(H, W)`` of the crop in pixels.
        extent_prior: metres the crop width spans when ``log_extent = 0``.
    """
    height, width = image_size
    u, v, log_extent = camera_crop.unbind(-1)
    depth = extent_prior * log_extent.exp() * intrinsics[:, 0, 0] / width
    pixel_x, pixel_y = (u + 1) * width / 2 - 0.5, (v + 1) * height / 2 - 0.5
    # Back-project through the pinhole K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]] (explicitly: any dtype works).
    ray_y = (pixel_y - intrinsics[:, 1, 2]) / intrinsics[:, 1, 1]
    ray_x = (pixel_x - intrinsics[:, 0, 2] - intrinsics[:, 0, 1] * ray_y) / intrinsics[:, 0, 0]
    return torch.stack([ray_x, ray_y, torch.ones_like(ray_x)], dim=-1) * depth[:, None]


def camera_translation_to_crop(
    camera_translation: torch.Tensor, intrinsics: torch.Tensor, image_size: tuple[int, int], extent_prior: float
) -> torch.Tensor:
    """Inverse of :func:`crop_to_camera_translation`: ``(B, 3)`` camera-space pelvis to ``(u, v, log_extent)``.

    Use it to turn ground-truth translations into regression targets. The pelvis must be in front of the camera.
    """
    height, width = image_size
    depth = camera_translation[:, 2]
    if not (depth > 0).all():
        raise ValueError("`camera_translation` must have positive depth (z > 0) in every sample.")
    pixels = (intrinsics @ (camera_translation / depth[:, None])[..., None])[..., 0]  # (B, 3), last entry 1
    u = (pixels[:, 0] + 0.5) * 2 / width - 1
    v = (pixels[:, 1] + 0.5) * 2 / height - 1
    log_extent = torch.log(depth * width / (intrinsics[:, 0, 0] * extent_prior))
    return torch.stack([u, v, log_extent], dim=-1)


def pre_norm_transformer(hidden_size: int, num_heads: int, mlp_ratio: float, num_layers: int) -> nn.TransformerEncoder:
    """A pre-LayerNorm GELU transformer encoder over ``(B, N, hidden_size)`` tokens, no dropout."""
    layer = nn.TransformerEncoderLayer(
        hidden_size,
        num_heads,
        dim_feedforward=int(hidden_size * mlp_ratio),
        dropout=0.0,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    return nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(hidden_size), enable_nested_tensor=False)


@dataclass
class ScoreHOIRegressorOutput(BaseOutput):
    """
    Output of [`ScoreHOIRegressor`].

    Args:
        x0 (`torch.Tensor` of shape `(B, 331)`): the predicted diffusion vector (raw 6D; decode with
            [`HOIParamCodec.decode`], which orthonormalises the rotations).
        camera_translation (`torch.Tensor` of shape `(B, 3)`): pelvis position in camera space (metres).
        image_tokens (`torch.Tensor` of shape `(B, Ni, image_feature_dim)`): the denoiser's image condition,
            one token per feature-map cell (`Ni = h * w`).
        feature_map (`torch.Tensor` of shape `(B, C, h, w)`): the backbone's last feature map (`C = hidden_sizes[-1]`),
            for the contact estimator.
        camera_crop (`torch.Tensor` of shape `(B, 3)`): the camera prediction `(u, v, log_extent)` before conversion
            (see [`crop_to_camera_translation`]); the well-conditioned space for a training loss.
    """

    x0: torch.Tensor
    camera_translation: torch.Tensor
    image_tokens: torch.Tensor
    feature_map: torch.Tensor
    camera_crop: torch.Tensor


class ScoreHOIRegressor(StrictConfigMixin, AlignedLoadingMixin, ModelMixin, ConfigMixin):
    """
    Single-image regressor of the initial human-object estimate, and source of the denoiser's image tokens.

    Args:
        num_channels (`int`, defaults to 5): crop channels (RGB, human mask, object mask).
        embedding_size (`int`, defaults to 32): ResNet stem width.
        hidden_sizes (`tuple[int]`, defaults to `(32, 64, 128, 256)`): ResNet stage widths; stages 2+ halve the
            resolution, so four stages give a stride-32 feature map.
        depths (`tuple[int]`, defaults to `(1, 1, 1, 1)`): basic residual blocks per stage.
        hidden_size (`int`, defaults to 128): width of the fusion transformer.
        num_layers (`int`, defaults to 2): fusion transformer layers.
        num_attention_heads (`int`, defaults to 4): attention heads of the fusion transformer.
        mlp_ratio (`float`, defaults to 2.0): MLP width over `hidden_size` in the fusion transformer.
        num_query_tokens (`int`, defaults to 4): learned query tokens whose outputs feed the heads.
        head_hidden_size (`int`, defaults to 512): width of the shared head MLP.
        image_feature_dim (`int`, defaults to 256): width of the image tokens (the denoiser's `image_feature_dim`).
        num_frequencies (`int`, defaults to 6): Fourier bands of the keypoint encoding.
        keypoint_scale (`float`, defaults to 1.0): metres mapped to ±1 before the keypoint encoding.
        camera_extent_prior (`float`, defaults to 2.0): metres the crop width spans at the pelvis depth when the
            camera head outputs 0 (see [`crop_to_camera_translation`]).
        output_init_gain (`float`, defaults to 0.01): gain of the heads' last layers, so training starts near the
            rest pose and the crop centre.
        body_keypoints (`bool`, defaults to `False`): read detected 2D body keypoints (`body_keypoints` of
            [`~ScoreHOIRegressor.forward`]).
    """

    @register_to_config
    def __init__(
        self,
        num_channels: int = 5,
        embedding_size: int = 32,
        hidden_sizes: tuple[int, ...] = (32, 64, 128, 256),
        depths: tuple[int, ...] = (1, 1, 1, 1),
        hidden_size: int = 128,
        num_layers: int = 2,
        num_attention_heads: int = 4,
        mlp_ratio: float = 2.0,
        num_query_tokens: int = 4,
        head_hidden_size: int = 512,
        image_feature_dim: int = 256,
        num_frequencies: int = 6,
        keypoint_scale: float = 1.0,
        camera_extent_prior: float = 2.0,
        output_init_gain: float = 0.01,
        body_keypoints: bool = False,
    ):
        super().__init__()
        if len(hidden_sizes) != len(depths) or not hidden_sizes:
            raise ValueError(
                f"`hidden_sizes` {tuple(hidden_sizes)} and `depths` {tuple(depths)} must be non-empty and "
                "equally long."
            )
        if hidden_size % num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size`={hidden_size} must be divisible by `num_attention_heads`={num_attention_heads}."
            )
        if not (keypoint_scale > 0 and camera_extent_prior > 0):
            raise ValueError("`keypoint_scale` and `camera_extent_prior` must be positive.")

        self.backbone = ResNetModel(
            ResNetConfig(
                num_channels=num_channels,
                embedding_size=embedding_size,
                hidden_sizes=list(hidden_sizes),
                depths=list(depths),
                layer_type="basic",
            )
        )
        feature_dim = hidden_sizes[-1]
        self.image_in = nn.Sequential(nn.LayerNorm(feature_dim), nn.Linear(feature_dim, hidden_size))
        # 2D position of each feature-map cell, encoded from its normalised coordinates (any crop size works).
        self.image_position = nn.Linear(2 * (1 + 2 * 4), hidden_size)
        self.keypoint_encoder = nn.Sequential(
            nn.Linear(3 * (1 + 2 * num_frequencies), hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size)
        )
        # Type embeddings of query, image and keypoint tokens.
        self.token_type = nn.Parameter(torch.zeros(3, hidden_size))
        self.query_tokens = nn.Parameter(torch.zeros(num_query_tokens, hidden_size))
        self.fusion = pre_norm_transformer(hidden_size, num_attention_heads, mlp_ratio, num_layers)
        self.image_out = nn.Linear(hidden_size, image_feature_dim)
        self.head_trunk = nn.Sequential(
            nn.LayerNorm(num_query_tokens * hidden_size),
            nn.Linear(num_query_tokens * hidden_size, head_hidden_size),
            nn.GELU(),
        )
        self.x0_head = nn.Linear(head_hidden_size, X0_DIM)
        self.camera_head = nn.Linear(head_hidden_size, 3)
        self._init_weights()
        if not isinstance(body_keypoints, bool):
            raise TypeError(f"`body_keypoints` must be True or False, got {body_keypoints!r}.")
        # Built last, so that the other layers initialise as in a model without keypoints.
        self.body_keypoint_encoder = (
            BodyKeypointEncoder(2 * hidden_size, num_query_tokens * hidden_size) if body_keypoints else None
        )

    def _init_weights(self) -> None:
        # Only our own layers: the backbone keeps transformers' ResNet initialisation.
        own = [self.image_in, self.image_position, self.keypoint_encoder, self.fusion, self.image_out, self.head_trunk]
        for module in (m for part in own for m in part.modules()):
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.token_type, std=0.02)
        nn.init.normal_(self.query_tokens, std=0.02)
        # Small (not zero) last layers: outputs start at the rest pose, yet gradients reach every layer at step one.
        gain = self.config.output_init_gain
        nn.init.xavier_uniform_(self.x0_head.weight, gain=gain)
        nn.init.xavier_uniform_(self.camera_head.weight, gain=gain)
        with torch.no_grad():
            self.x0_head.bias.copy_(rest_pose_x0())
        nn.init.zeros_(self.camera_head.bias)

    @staticmethod
    def _cell_coordinates(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
        """``(h * w, 2)`` centres of the feature-map cells in ``grid_sample`` coordinates (x, y), row-major."""
        ys = (torch.arange(height, device=like.device, dtype=like.dtype) + 0.5) * 2 / height - 1
        xs = (torch.arange(width, device=like.device, dtype=like.dtype) + 0.5) * 2 / width - 1
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)

    def forward(
        self,
        pixel_values: torch.Tensor,
        object_keypoints: torch.Tensor,
        intrinsics: torch.Tensor,
        return_dict: bool = True,
        body_keypoints: torch.Tensor | None = None,
    ) -> ScoreHOIRegressorOutput | tuple:
        """
        Predicts the initial estimate and the image features of a batch of crops.

        Args:
            pixel_values (`torch.Tensor` of shape `(B, 5, H, W)`): normalised RGB, human mask, object mask (the crop).
            object_keypoints (`torch.Tensor` of shape `(B, K, 3)`): the object template's keypoints (template frame,
                metres), e.g. `ObjectTemplate.keypoints` (K = 64) expanded to the batch.
            intrinsics (`torch.Tensor` of shape `(B, 3, 3)`): pinhole matrix of the crop, in its pixel coordinates.
            return_dict (`bool`, defaults to `True`): return a [`ScoreHOIRegressorOutput`] or a tuple.
            body_keypoints (`torch.Tensor` of shape `(B, 33, 3)`, *optional*): detected BlazePose landmarks,
                crop-normalised `(x, y, visibility)` (see [`~models.body_keypoints.crop_keypoints`]); only for a
                model built with `body_keypoints=True`, where leaving them out means "nobody detected".

        Returns:
            [`ScoreHOIRegressorOutput`] or the tuple
            `(x0, camera_translation, image_tokens, feature_map, camera_crop)`.
        """
        channels = self.config.num_channels
        check_tensor(
            "pixel_values", pixel_values, (None, channels, None, None), f"(B, {channels}, H, W)", finite=True
        )
        batch, _, height, width = pixel_values.shape
        if height < 32 or width < 32:
            raise ValueError(f"`pixel_values` must be at least 32 x 32 pixels, got {height} x {width}.")
        check_tensor("object_keypoints", object_keypoints, (batch, None, 3), f"({batch}, K, 3)", finite=True)
        check_tensor("intrinsics", intrinsics, (batch, 3, 3), f"({batch}, 3, 3)", finite=True)
        if body_keypoints is not None:
            if self.body_keypoint_encoder is None:
                raise ValueError("`body_keypoints` were given, but this regressor was built without keypoint input "
                                 "(config `body_keypoints=False`); leave them out.")
            check_tensor("body_keypoints", body_keypoints, (batch, 33, 3), f"({batch}, 33, 3)", finite=True)
        dtype = self.dtype
        pixel_values, object_keypoints, intrinsics = (
            t.to(dtype) for t in (pixel_values, object_keypoints, intrinsics)
        )

        feature_map = self.backbone(pixel_values).last_hidden_state  # (B, C, h, w)
        h, w = feature_map.shape[-2:]
        cells = self._cell_coordinates(h, w, feature_map)
        image = self.image_in(feature_map.flatten(2).transpose(1, 2))  # (B, h*w, hidden)
        image = image + self.image_position(fourier_features(cells, 4, 1.0)) + self.token_type[1]
        keypoints = self.keypoint_encoder(
            fourier_features(object_keypoints, self.config.num_frequencies, self.config.keypoint_scale)
        ) + self.token_type[2]
        queries = (self.query_tokens + self.token_type[0]).expand(batch, -1, -1)
        if self.body_keypoint_encoder is not None:
            if body_keypoints is None:
                body_keypoints = no_keypoints(batch, pixel_values)
            queries = queries + self.body_keypoint_encoder(body_keypoints.to(dtype)).view_as(queries)
        tokens = self.fusion(torch.cat([queries, image, keypoints], dim=1))

        num_queries = self.config.num_query_tokens
        image_tokens = self.image_out(tokens[:, num_queries : num_queries + h * w])
        trunk = self.head_trunk(tokens[:, :num_queries].flatten(1))
        x0 = self.x0_head(trunk)
        camera_crop = self.camera_head(trunk)
        camera_translation = crop_to_camera_translation(
            camera_crop, intrinsics, (height, width), self.config.camera_extent_prior
        )
        if not return_dict:
            return (x0, camera_translation, image_tokens, feature_map, camera_crop)
        return ScoreHOIRegressorOutput(
            x0=x0,
            camera_translation=camera_translation,
            image_tokens=image_tokens,
            feature_map=feature_map,
            camera_crop=camera_crop,
        )
