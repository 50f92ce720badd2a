"""Bit-identical outputs after ``from_pretrained`` on the CPU.

safetensors hands out tensors at arbitrary byte offsets of the file's memory map, and the CPU matmul kernels
sum in a different (equally valid) order for unaligned memory, so without a copy a loaded model's outputs
differ from the saved one's in the last bits. Copying every CPU tensor into fresh storage fixes that.
"""
from __future__ import annotations

import torch
from diffusers import ModelMixin

from ..safetensors_only import SafetensorsOnlyMixin


class AlignedLoadingMixin(SafetensorsOnlyMixin):
    """Mix into a ``ModelMixin`` subclass (before it) to copy CPU tensors into fresh storage after loading."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """[`ModelMixin.from_pretrained`] of safetensors weights only, then every CPU parameter and buffer is copied
        into fresh storage. A local folder holding only pickled weights (``.bin``, ``.pt``, ...) is refused."""
        loaded = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        # `output_loading_info=True` returns (model, info).
        model: ModelMixin = loaded[0] if isinstance(loaded, tuple) else loaded
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                if tensor.device.type == "cpu":
                    tensor.data = tensor.data.clone()
        return loaded
