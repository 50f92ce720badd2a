"""Models: the ScoreHOI denoiser."""

from .denoiser import ConditionCache, ScoreHOIDenoiser, ScoreHOIDenoiserOutput, X0_PARTS

__all__ = ["ScoreHOIDenoiser", "ScoreHOIDenoiserOutput", "ConditionCache", "X0_PARTS"]
