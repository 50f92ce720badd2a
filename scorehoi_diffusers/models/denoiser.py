"""ScoreHOIDenoiser: a transformer over body and object part tokens that predicts the noise of x0 `(B, 331)`.

The 331 numbers of x0 (laid out by `scorehoi_diffusers.params`) are split into 12 part tokens (torso, head, arms,
legs, two tokens per hand, object pose, shape). Each block runs self-attention over the part tokens,
cross-attention to the condition tokens (image feature tokens from the regressor, object keypoint tokens) and an
MLP. The timestep enters through adaptive LayerNorms with zero-initialised gates (DiT's adaLN-Zero), computed once
for all blocks plus a learned per-block offset (PixArt-α's adaLN-single), which saves one large linear layer per
block. The condition is resampled once per call into a fixed number of latent tokens, whose keys and values every
step reuses ([`ConditionCache`]). With `body_keypoints=True` the condition also carries detected 2D body keypoints
(the 33 BlazePose landmarks, crop-normalised, see `scorehoi_diffusers.models.body_keypoints`): their encoding is
added to every resampled latent through a last layer that starts at zero, so a warm start from a model without
them begins as that model.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from ..params import BETAS_SLICE, OBJECT_ROTATION_SLICE, OBJECT_TRANSLATION_SLICE, ROOT_SLICE, X0_DIM
from ..skeleton import (
    ANKLE,
    COLLAR,
    ELBOW,
    FOOT,
    HEAD,
    HIP,
    KNEE,
    LEFT,
    NECK,
    PELVIS,
    RIGHT,
    SHOULDER,
    SPINE1,
    SPINE2,
    SPINE3,
    WRIST,
    finger_joint,
)
from ..strict_config import StrictConfigMixin
from .aligned_loading import AlignedLoadingMixin
from .body_keypoints import BodyKeypointEncoder, no_keypoints

__all__ = ["ScoreHOIDenoiser", "ScoreHOIDenoiserOutput", "ConditionCache", "X0_PARTS"]


def _joints(*joints: int) -> tuple[int, ...]:
    # The root's 6D rotation comes first and every other SMPL-H joint j follows in order: x0[6j : 6j + 6].
    width = ROOT_SLICE.stop - ROOT_SLICE.start
    return tuple(c for j in joints for c in range(ROOT_SLICE.start + width * j, ROOT_SLICE.start + width * (j + 1)))


def _hand(side: int, fingers: str) -> tuple[int, ...]:
    return _joints(*(finger_joint(side, f, k) for f in fingers.split() for k in range(3)))


def _columns(*slices: slice) -> tuple[int, ...]:
    return tuple(c for part in slices for c in range(part.start, part.stop))


X0_PARTS: dict[str, tuple[int, ...]] = {
    "torso": _joints(PELVIS, SPINE1, SPINE2, SPINE3),
    "head": _joints(NECK, HEAD),
    "left_arm": _joints(COLLAR[LEFT], SHOULDER[LEFT], ELBOW[LEFT], WRIST[LEFT]),
    "right_arm": _joints(COLLAR[RIGHT], SHOULDER[RIGHT], ELBOW[RIGHT], WRIST[RIGHT]),
    "left_leg": _joints(HIP[LEFT], KNEE[LEFT], ANKLE[LEFT], FOOT[LEFT]),
    "right_leg": _joints(HIP[RIGHT], KNEE[RIGHT], ANKLE[RIGHT], FOOT[RIGHT]),
    "left_hand_index_middle_thumb": _hand(LEFT, "index middle thumb"),
    "left_hand_pinky_ring": _hand(LEFT, "pinky ring"),
    "right_hand_index_middle_thumb": _hand(RIGHT, "index middle thumb"),
    "right_hand_pinky_ring": _hand(RIGHT, "pinky ring"),
    "object_pose": _columns(OBJECT_ROTATION_SLICE, OBJECT_TRANSLATION_SLICE),
    "shape": _columns(BETAS_SLICE),
}
"""The x0 columns of each part token; together they cover every column of x0 exactly once."""


@dataclass
class ScoreHOIDenoiserOutput(BaseOutput):
    """
    Output of [`ScoreHOIDenoiser`].

    Args:
        sample (`torch.Tensor` of shape `(B, 331)`): the predicted noise ε.
    """

    sample: torch.Tensor


@dataclass
class ConditionCache:
    """
    Every block's cross-attention keys and values, computed once per call by [`ScoreHOIDenoiser.encode_condition`]
    and reused at every denoising step.

    Args:
        keys (`torch.Tensor` of shape `(num_layers, Bc, num_heads, Nc, head_dim)`):
            Cross-attention keys; `Bc` is the batch size or 1 (one condition shared by the whole batch).
        values (`torch.Tensor` of shape `(num_layers, Bc, num_heads, Nc, head_dim)`):
            Cross-attention values.
        attention_mask (`torch.Tensor` of shape `(Bc, 1, 1, Nc)`, *optional*):
            `True` where a token is attended; dropped samples attend to the null tokens only. `None`: all tokens.
    """

    keys: torch.Tensor
    values: torch.Tensor
    attention_mask: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.keys.shape[1]


class _Attention(nn.Module):
    """
    Multi-head attention. Self-attention projects queries, keys and values from `x` (one fused linear);
    cross-attention projects only the queries and takes precomputed `keys`, `values` `(B or 1, heads, N, head_dim)`.
    """

    def __init__(self, hidden_size: int, num_heads: int, self_attention: bool):
        super().__init__()
        self.num_heads = num_heads
        self.in_proj = nn.Linear(hidden_size, (3 if self_attention else 1) * hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, x, keys=None, values=None, attention_mask=None):
        batch, tokens, hidden = x.shape
        projected = self.in_proj(x).view(batch, tokens, -1, self.num_heads, hidden // self.num_heads)
        projected = projected.permute(2, 0, 3, 1, 4)  # (1 or 3, B, heads, tokens, head_dim)
        if keys is None:
            queries, keys, values = projected.unbind(0)
        else:
            queries = projected[0]
            keys, values = keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1)
        out = F.scaled_dot_product_attention(queries, keys, values, attn_mask=attention_mask)
        return self.out_proj(out.transpose(1, 2).reshape(batch, tokens, hidden))


class _DenoiserBlock(nn.Module):
    """adaLN-Zero self-attention, cross-attention to the condition, adaLN-Zero MLP."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        # This block's offset to the shared modulation, rows (shift, scale, gate) x (attention, MLP). The scale rows
        # start at 1 (the "1 +" of DiT's `x * (1 + scale)`, folded in here) and the gates at 0 (adaLN-Zero).
        self.modulation_offset = nn.Parameter(torch.zeros(6, 1, hidden_size))
        self.self_attention = _Attention(hidden_size, num_heads, self_attention=True)
        self.cross_attention_norm = nn.LayerNorm(hidden_size)
        self.cross_attention = _Attention(hidden_size, num_heads, self_attention=False)
        self.mlp = _mlp(hidden_size, mlp_ratio)

    def forward(self, x, modulation, keys, values, attention_mask):
        shift_sa, scale_sa, gate_sa, shift_mlp, scale_mlp, gate_mlp = (modulation + self.modulation_offset).unbind(1)
        h = torch.addcmul(shift_sa, F.layer_norm(x, x.shape[-1:]), scale_sa)
        x = torch.addcmul(x, gate_sa, self.self_attention(h))
        x = x + self.cross_attention(self.cross_attention_norm(x), keys, values, attention_mask)
        h = torch.addcmul(shift_mlp, F.layer_norm(x, x.shape[-1:]), scale_mlp)
        return torch.addcmul(x, gate_mlp, self.mlp(h))


class _ConditionResampler(nn.Module):
    """
    Learned latent tokens that attend once to all condition tokens (Flamingo's Perceiver resampler), so that the
    per-step cross-attention costs the same for any number of image tokens.
    """

    def __init__(self, hidden_size: int, num_heads: int, num_latents: int, mlp_ratio: float):
        super().__init__()
        self.num_heads = num_heads
        self.latents = nn.Parameter(torch.empty(num_latents, hidden_size))
        self.token_norm = nn.LayerNorm(hidden_size)
        self.to_kv = nn.Linear(hidden_size, 2 * hidden_size)
        self.latent_norm = nn.LayerNorm(hidden_size)
        self.attention = _Attention(hidden_size, num_heads, self_attention=False)
        self.mlp_norm = nn.LayerNorm(hidden_size)
        self.mlp = _mlp(hidden_size, mlp_ratio)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """`(B, N, hidden)` condition tokens -> `(B, num_latents, hidden)`."""
        batch, num_tokens, hidden = tokens.shape
        kv = self.to_kv(self.token_norm(tokens)).view(batch, num_tokens, 2, self.num_heads, hidden // self.num_heads)
        keys, values = kv.permute(2, 0, 3, 1, 4).unbind(0)
        latents = self.latents.expand(batch, -1, -1)
        latents = latents + self.attention(self.latent_norm(latents), keys, values)
        return latents + self.mlp(self.mlp_norm(latents))


def _mlp(hidden_size: int, mlp_ratio: float) -> nn.Sequential:
    mlp_size = int(hidden_size * mlp_ratio)
    return nn.Sequential(nn.Linear(hidden_size, mlp_size), nn.GELU(), nn.Linear(mlp_size, hidden_size))


class ScoreHOIDenoiser(StrictConfigMixin, AlignedLoadingMixin, ModelMixin, ConfigMixin):
    """
    The ScoreHOI prior: predicts the noise ε of a noisy x0 vector `(B, 331)` at a timestep, conditioned on image
    feature tokens and object keypoints.

    Condition: image tokens are projected to `hidden_size` (LayerNorm + linear), each object keypoint is encoded by
    a small MLP, and `num_condition_latents` learned latents attend once to all of them (a Perceiver resampler).
    Every block cross-attends to two learned null tokens, which are always present, and to these latents. A missing
    condition part adds no tokens; with no condition the model attends to the null tokens only (unconditional).
    In training mode, `condition_dropout_prob` drops each sample's condition with that probability (the sample then
    attends to the null tokens only, exactly as the unconditional model), drawing from the `generator` passed to
    [`~ScoreHOIDenoiser.forward`] or, like `nn.Dropout`, from torch's default generator. In eval mode nothing
    random happens.

    Args:
        hidden_size (`int`, defaults to 128): token width.
        num_layers (`int`, defaults to 3): number of transformer blocks.
        num_attention_heads (`int`, defaults to 4): heads of every attention.
        mlp_ratio (`float`, defaults to 2.0): MLP width over `hidden_size`.
        image_feature_dim (`int`, defaults to 256): width of the regressor's image tokens.
        num_condition_latents (`int`, defaults to 32): condition tokens each block attends to (besides the nulls).
        timestep_embedding_dim (`int`, defaults to 256): width of the sinusoidal timestep features.
        condition_dropout_prob (`float`, defaults to 0.1): per-sample condition dropout in training.
        body_keypoints (`bool`, defaults to `False`): the condition includes detected 2D body keypoints
            (`body_keypoints` of [`~ScoreHOIDenoiser.encode_condition`]).

    The defaults (1.1 M parameters) are sized for CPU refinement: about 1.9 ms per step at batch 8 on 2 cores
    (`benchmarks/bench_denoiser.py`). Larger configs (e.g. `hidden_size=256, num_layers=6`) are for GPUs.
    """

    @register_to_config
    def __init__(
        self,
        hidden_size: int = 128,
        num_layers: int = 3,
        num_attention_heads: int = 4,
        mlp_ratio: float = 2.0,
        image_feature_dim: int = 256,
        num_condition_latents: int = 32,
        timestep_embedding_dim: int = 256,
        condition_dropout_prob: float = 0.1,
        body_keypoints: bool = False,
    ):
        super().__init__()
        for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers),
                            ("num_attention_heads", num_attention_heads), ("image_feature_dim", image_feature_dim),
                            ("num_condition_latents", num_condition_latents),
                            ("timestep_embedding_dim", timestep_embedding_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TypeError(f"`{name}` must be a positive integer, got {value!r}.")
        if hidden_size % num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size`={hidden_size} must be divisible by `num_attention_heads`={num_attention_heads}."
            )
        if not 0.0 <= condition_dropout_prob <= 1.0:
            raise ValueError(f"`condition_dropout_prob` must be in [0, 1], got {condition_dropout_prob}.")

        # Part tokens: x0 is gathered into a zero-padded (B, P, max_width) tensor (column X0_DIM is the padding)
        # so that all per-part projections run as one batched matmul.
        parts = list(X0_PARTS.values())
        max_width = max(len(p) for p in parts)
        gather = torch.full((len(parts), max_width), X0_DIM, dtype=torch.long)
        for i, columns in enumerate(parts):
            gather[i, : len(columns)] = torch.tensor(columns)
        # scatter[c]: where x0 column c sits in the flattened (P * max_width) part layout.
        scatter = torch.empty(X0_DIM, dtype=torch.long)
        scatter[gather[gather < X0_DIM]] = torch.nonzero(gather.flatten() < X0_DIM).flatten()
        self.register_buffer("part_gather_index", gather, persistent=False)
        self.register_buffer("part_scatter_index", scatter, persistent=False)

        self.part_in_weight = nn.Parameter(torch.empty(len(parts), max_width, hidden_size))
        self.part_in_bias = nn.Parameter(torch.zeros(len(parts), hidden_size))
        self.part_embedding = nn.Parameter(torch.empty(len(parts), hidden_size))
        self.part_out_weight = nn.Parameter(torch.zeros(len(parts), hidden_size, max_width))
        self.part_out_bias = nn.Parameter(torch.zeros(len(parts), max_width))

        self.time_proj = Timesteps(timestep_embedding_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(timestep_embedding_dim, hidden_size)
        # adaLN-single: one modulation for all blocks, each block adds its own learned offset.
        self.time_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))
        # (shift, scale) of the output LayerNorm: the timestep embedding plus this offset.
        self.final_modulation_offset = nn.Parameter(torch.zeros(2, 1, hidden_size))

        self.null_condition_tokens = nn.Parameter(torch.empty(2, hidden_size))
        self.image_proj = nn.Sequential(nn.LayerNorm(image_feature_dim), nn.Linear(image_feature_dim, hidden_size))
        self.keypoint_mlp = nn.Sequential(nn.Linear(3, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))
        self.condition_resampler = _ConditionResampler(
            hidden_size, num_attention_heads, num_condition_latents, mlp_ratio
        )
        self.condition_norm = nn.LayerNorm(hidden_size)
        # All blocks' cross-attention keys and values in one projection: (hidden) -> (num_layers, 2, hidden).
        self.condition_to_kv = nn.Linear(hidden_size, num_layers * 2 * hidden_size)

        self.blocks = nn.ModuleList(
            [_DenoiserBlock(hidden_size, num_attention_heads, mlp_ratio) for _ in range(num_layers)]
        )
        self._init_weights()
        if not isinstance(body_keypoints, bool):
            raise TypeError(f"`body_keypoints` must be True or False, got {body_keypoints!r}.")
        # Built last, so that the other layers initialise as in a model without keypoints.
        self.body_keypoint_encoder = BodyKeypointEncoder(2 * hidden_size, hidden_size) if body_keypoints else None

    @torch.no_grad()
    def _init_weights(self):
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        # Each part's in-projection is uniform with its own fan-in (its width); padding rows stay zero.
        padding = self.part_gather_index == X0_DIM
        widths = (~padding).sum(1, keepdim=True)
        nn.init.uniform_(self.part_in_weight, -1.0, 1.0)
        self.part_in_weight.mul_((3.0 / widths)[..., None].sqrt()).masked_fill_(padding[..., None], 0.0)
        for embedding in (self.part_embedding, self.null_condition_tokens, self.condition_resampler.latents):
            nn.init.normal_(embedding, std=0.02)
        # adaLN-Zero: the modulation starts at shift 0, scale 1, gate 0, so each block starts as the identity
        # (up to its cross-attention) and the output at zero.
        nn.init.zeros_(self.time_modulation[1].weight)
        nn.init.zeros_(self.time_modulation[1].bias)
        for block in self.blocks:
            block.modulation_offset.zero_()[[1, 4]] = 1.0
        self.final_modulation_offset.zero_()[1] = 1.0
        nn.init.zeros_(self.part_out_weight)

    def encode_condition(
        self,
        image_tokens: torch.Tensor | None = None,
        object_keypoints: torch.Tensor | None = None,
        drop_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        body_keypoints: torch.Tensor | None = None,
    ) -> ConditionCache:
        """
        Computes every block's cross-attention keys and values once; pass the result as `condition` to every step.

        Args:
            image_tokens (`torch.Tensor` of shape `(B, Ni, image_feature_dim)`, *optional*):
                Image feature tokens from the regressor (any `Ni`; a set: carry position in the features if needed).
            object_keypoints (`torch.Tensor` of shape `(B, K, 3)`, *optional*):
                Object keypoints in the object's template frame (metres), e.g. the template's 64 keypoints.
            drop_mask (`torch.BoolTensor` of shape `(B,)`, *optional*):
                `True` drops that sample's condition (it attends to the null tokens only), in any mode. Without it,
                training mode draws one with probability `condition_dropout_prob`.
            generator (`torch.Generator`, *optional*):
                Random source of the training-mode condition dropout.
            body_keypoints (`torch.Tensor` of shape `(B, 33, 3)`, *optional*):
                Detected BlazePose landmarks, crop-normalised `(x, y, visibility)`; only for a model built with
                `body_keypoints=True`, where leaving them out means "nobody detected".

        Returns:
            [`ConditionCache`] with batch size `B`, or 1 when no input is given.
        """
        if body_keypoints is not None:
            if self.body_keypoint_encoder is None:
                raise ValueError("`body_keypoints` were given, but this denoiser was built without keypoint input "
                                 "(config `body_keypoints=False`); leave them out.")
            if body_keypoints.ndim != 3 or body_keypoints.shape[1:] != (33, 3):
                raise ValueError(f"`body_keypoints` must have shape (B, 33, 3), got {tuple(body_keypoints.shape)}.")
            if not torch.isfinite(body_keypoints).all():
                raise ValueError("`body_keypoints` contains NaN or infinite values.")
            if image_tokens is None and object_keypoints is None:
                raise ValueError("`body_keypoints` join the image tokens or object keypoints; give those too.")
        batch = _condition_batch_size(image_tokens, object_keypoints, drop_mask,
                                      None if body_keypoints is None else body_keypoints.shape[0])
        null = self.null_condition_tokens.expand(batch, -1, -1)
        inputs = []
        if image_tokens is not None:
            if image_tokens.shape[-1] != self.config.image_feature_dim:
                raise ValueError(
                    f"`image_tokens` must have shape (B, Ni, {self.config.image_feature_dim}) "
                    f"(`image_feature_dim` of the config), got {tuple(image_tokens.shape)}."
                )
            inputs.append(self.image_proj(image_tokens.to(null.dtype)))
        if object_keypoints is not None:
            inputs.append(self.keypoint_mlp(object_keypoints.to(null.dtype)))
        latents = [self.condition_resampler(torch.cat(inputs, dim=1))] if inputs else []
        if self.body_keypoint_encoder is not None and inputs:
            if body_keypoints is None:
                body_keypoints = no_keypoints(batch, null)
            latents[0] = latents[0] + self.body_keypoint_encoder(body_keypoints.to(null.dtype))[:, None]
        tokens = self.condition_norm(torch.cat([null] + latents, dim=1))  # (B, Nc, hidden)

        num_layers, hidden = self.config.num_layers, self.config.hidden_size
        heads = self.config.num_attention_heads
        kv = self.condition_to_kv(tokens).view(batch, tokens.shape[1], num_layers, 2, heads, hidden // heads)
        keys, values = kv.permute(3, 2, 0, 4, 1, 5).contiguous().unbind(0)

        if drop_mask is None and self.training and self.config.condition_dropout_prob > 0 and inputs:
            device = generator.device if generator is not None else null.device
            drop_mask = torch.rand(batch, generator=generator, device=device) < self.config.condition_dropout_prob
        attention_mask = None
        if drop_mask is not None:
            keep = torch.ones(batch, tokens.shape[1], dtype=torch.bool, device=null.device)
            keep[:, null.shape[1] :] = ~drop_mask.to(device=null.device, dtype=torch.bool)[:, None]
            attention_mask = keep[:, None, None, :]
        return ConditionCache(keys=keys, values=values, attention_mask=attention_mask)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        condition: ConditionCache | None = None,
        image_tokens: torch.Tensor | None = None,
        object_keypoints: torch.Tensor | None = None,
        drop_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
        body_keypoints: torch.Tensor | None = None,
    ) -> ScoreHOIDenoiserOutput | tuple:
        """
        Predicts the noise ε of `sample` at `timestep`.

        Args:
            sample (`torch.Tensor` of shape `(B, 331)`): the noisy x0 vector `x_t`.
            timestep (`int`, `float` or `torch.Tensor` of shape `()` or `(B,)`): the diffusion timestep(s).
            condition ([`ConditionCache`], *optional*): from [`~ScoreHOIDenoiser.encode_condition`].
            image_tokens, object_keypoints, drop_mask, generator, body_keypoints:
                Encoded on the fly by [`~ScoreHOIDenoiser.encode_condition`] when `condition` is not given.
            return_dict (`bool`, defaults to `True`): return a [`ScoreHOIDenoiserOutput`] or a 1-tuple.

        Returns:
            [`ScoreHOIDenoiserOutput`] with `sample` of shape `(B, 331)`, or `(sample,)`.
        """
        if sample.ndim != 2 or sample.shape[1] != X0_DIM:
            raise ValueError(f"`sample` must have shape (B, {X0_DIM}), got {tuple(sample.shape)}.")
        batch = sample.shape[0]
        if condition is None:
            condition = self.encode_condition(image_tokens, object_keypoints, drop_mask, generator, body_keypoints)
        elif any(value is not None for value in (image_tokens, object_keypoints, drop_mask, body_keypoints)):
            raise ValueError("Pass either `condition` or `image_tokens`/`object_keypoints`/`drop_mask`/"
                             "`body_keypoints`, not both.")
        if condition.batch_size not in (1, batch):
            raise ValueError(f"`condition` has batch size {condition.batch_size}; `sample` has {batch}.")

        # One timestep for the whole batch is embedded once and broadcast.
        timestep = torch.as_tensor(timestep, device=sample.device)
        if timestep.ndim > 1 or (timestep.ndim == 1 and timestep.shape[0] not in (1, batch)):
            raise ValueError(f"`timestep` must be a scalar or have shape ({batch},), got {tuple(timestep.shape)}.")
        time = self.time_embedding(self.time_proj(timestep.reshape(-1)).to(sample.dtype))  # (Bt, hidden)
        modulation = self.time_modulation(time).view(time.shape[0], 6, 1, -1)

        parts = F.pad(sample, (0, 1))[:, self.part_gather_index]  # (B, P, max_width)
        x = torch.einsum("bpw,pwh->bph", parts, self.part_in_weight) + (self.part_in_bias + self.part_embedding)
        for block, keys, values in zip(self.blocks, condition.keys, condition.values):
            x = block(x, modulation, keys, values, condition.attention_mask)

        shift, scale = (time[:, None, None, :] + self.final_modulation_offset).unbind(1)
        x = torch.addcmul(shift, F.layer_norm(x, x.shape[-1:]), scale)
        out = torch.einsum("bph,phw->bpw", x, self.part_out_weight) + self.part_out_bias
        out = out.reshape(batch, -1)[:, self.part_scatter_index]

        if not return_dict:
            return (out,)
        return ScoreHOIDenoiserOutput(sample=out)


def _condition_batch_size(image_tokens, object_keypoints, drop_mask, body_keypoints_batch: int | None = None) -> int:
    """The common batch size of the condition inputs (1 when none is given); clear errors for bad inputs."""
    sizes = {} if body_keypoints_batch is None else {"body_keypoints": body_keypoints_batch}
    if image_tokens is not None:
        if image_tokens.ndim != 3:
            raise ValueError(
                f"`image_tokens` must have shape (B, Ni, image_feature_dim), got {tuple(image_tokens.shape)}."
            )
        sizes["image_tokens"] = image_tokens.shape[0]
    if object_keypoints is not None:
        if object_keypoints.ndim != 3 or object_keypoints.shape[-1] != 3:
            raise ValueError(f"`object_keypoints` must have shape (B, K, 3), got {tuple(object_keypoints.shape)}.")
        sizes["object_keypoints"] = object_keypoints.shape[0]
    if drop_mask is not None:
        if drop_mask.ndim != 1:
            raise ValueError(f"`drop_mask` must have shape (B,), got {tuple(drop_mask.shape)}.")
        sizes["drop_mask"] = drop_mask.shape[0]
    if len(set(sizes.values())) > 1:
        raise ValueError(f"The condition inputs disagree on the batch size: {sizes}.")
    for name, value in (("image_tokens", image_tokens), ("object_keypoints", object_keypoints)):
        if value is not None and not torch.isfinite(value).all():
            raise ValueError(f"`{name}` contains NaN or infinite values.")
    return next(iter(sizes.values()), 1)
