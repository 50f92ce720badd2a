"""Refuse saved configs with fields this version of the package does not know.

diffusers drops unknown ``config.json`` fields with a log line and builds the model without them. For our models an
unknown field means the folder was written by another (newer) version whose architecture this code cannot build,
and the usual symptom would be a shape error deep inside weight loading, or worse, a model that loads and quietly
computes something else. This mixin turns that into one clear error at ``from_pretrained`` time.

``from_config`` is left alone on purpose: building a scheduler from another scheduler's config (the diffusers way of
swapping schedulers) is meant to ignore the fields that do not apply.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

__all__ = ["StrictConfigMixin", "unknown_config_fields"]


def unknown_config_fields(cls: type, config: Mapping[str, Any]) -> set[str]:
    """Public fields of ``config`` that ``cls.__init__`` does not accept (``_``-prefixed fields are metadata)."""
    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return set()
    known = set(parameters) | set(getattr(cls, "ignore_for_config", ()))
    return {key for key in config if not key.startswith("_") and key not in known}


class StrictConfigMixin:
    """Mix into a ``ConfigMixin`` class (before it): ``load_config`` raises on fields ``__init__`` does not accept."""

    @classmethod
    def load_config(cls, pretrained_model_name_or_path, *args, **kwargs):
        """[`ConfigMixin.load_config`], then a ``ValueError`` naming any field this version does not know."""
        loaded = super().load_config(pretrained_model_name_or_path, *args, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        unknown = unknown_config_fields(cls, config)
        if unknown:
            subfolder = kwargs.get("subfolder")
            where = f"{pretrained_model_name_or_path}" + (f"/{subfolder}" if subfolder else "")
            raise ValueError(
                f"The {cls.__name__} config in {where!r} has fields this version of scorehoi_diffusers does not "
                f"know: {sorted(unknown)} (written by diffusers {config.get('_diffusers_version', '?')} with a "
                "different scorehoi_diffusers?). Install the version that saved it, or re-save the folder with "
                "this one."
            )
        return loaded
