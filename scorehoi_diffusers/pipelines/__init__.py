"""Diffusers pipelines of scorehoi_diffusers."""
from .pipeline_scorehoi import ScoreHOIPipeline, ScoreHOIPipelineOutput

__all__ = ["ScoreHOIPipeline", "ScoreHOIPipelineOutput"]
