"""ScoreHOI as a diffusers pipeline: physically plausible human-object interaction reconstruction.

Public API only. ``ModelMixin`` and ``SchedulerMixin`` are re-exported on purpose: diffusers' loader looks
them up in the namespace of the library named in ``model_index.json`` to decide how to load a component.
"""
from diffusers import ModelMixin, SchedulerMixin

from .body import BodyModel, BodyOutput
from .contacts import Contacts, ProximityContactEstimator, ReconstructionState
from .guidance import GuidanceConfig, GuidanceInputs, guidance_loss
from .models import ScoreHOIContactEstimator, ScoreHOIDenoiser, ScoreHOIRegressor
from .objects import ObjectTemplate, load_object
from .params import HOIParamCodec, HOIParams
from .pipelines.pipeline_scorehoi import ScoreHOIPipeline, ScoreHOIPipelineOutput
from .schedulers.scheduling_guided_ddim import GuidedDDIMScheduler

__version__ = "0.1.0"

__all__ = [
    "BodyModel",
    "BodyOutput",
    "Contacts",
    "GuidanceConfig",
    "GuidanceInputs",
    "GuidedDDIMScheduler",
    "HOIParamCodec",
    "HOIParams",
    "ModelMixin",
    "ObjectTemplate",
    "ProximityContactEstimator",
    "ReconstructionState",
    "SchedulerMixin",
    "ScoreHOIContactEstimator",
    "ScoreHOIDenoiser",
    "ScoreHOIPipeline",
    "ScoreHOIPipelineOutput",
    "ScoreHOIRegressor",
    "guidance_loss",
    "load_object",
]
