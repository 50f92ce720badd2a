"""Models: the ScoreHOI denoiser (the prior), the image regressor and the learned contact estimator."""

from .contact_estimator import ContactEstimatorOutput, ScoreHOIContactEstimator
from .denoiser import X0_PARTS, ConditionCache, ScoreHOIDenoiser, ScoreHOIDenoiserOutput
from .regressor import ScoreHOIRegressor, ScoreHOIRegressorOutput

__all__ = [
    "ConditionCache",
    "ContactEstimatorOutput",
    "ScoreHOIContactEstimator",
    "ScoreHOIDenoiser",
    "ScoreHOIDenoiserOutput",
    "ScoreHOIRegressor",
    "ScoreHOIRegressorOutput",
    "X0_PARTS",
]
