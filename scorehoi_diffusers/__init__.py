"""ScoreHOI as a diffusers pipeline: physically plausible human-object interaction reconstruction.

Public API only. ``ModelMixin`` and ``SchedulerMixin`` are re-exported on purpose: diffusers' loader looks
them up in the namespace of the library named in ``model_index.json`` to decide how to load a component.

The names are loaded on first use (PEP 562 ``__getattr__``), so that ``import scorehoi_diffusers.cli`` does not
import torch and diffusers: ``scorehoi --help`` answers at once.
"""
import importlib

__version__ = "0.1.0"

# Public name -> module that defines it (relative to this package; absolute for diffusers).
_LAZY_NAMES = {
    "ModelMixin": "diffusers",
    "SchedulerMixin": "diffusers",
    "BodyModel": ".body",
    "BodyOutput": ".body",
    "Contacts": ".contacts",
    "ProximityContactEstimator": ".contacts",
    "ReconstructionState": ".contacts",
    "GuidanceConfig": ".guidance",
    "GuidanceInputs": ".guidance",
    "guidance_loss": ".guidance",
    "ScoreHOIContactEstimator": ".models",
    "ScoreHOIDenoiser": ".models",
    "ScoreHOIRegressor": ".models",
    "ObjectTemplate": ".objects",
    "load_object": ".objects",
    "HOIParamCodec": ".params",
    "HOIParams": ".params",
    "ScoreHOIPipeline": ".pipelines.pipeline_scorehoi",
    "ScoreHOIPipelineOutput": ".pipelines.pipeline_scorehoi",
    "GuidedDDIMScheduler": ".schedulers.scheduling_guided_ddim",
}

__all__ = sorted(_LAZY_NAMES)


def __getattr__(name: str):
    if name not in _LAZY_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY_NAMES[name], __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES))
