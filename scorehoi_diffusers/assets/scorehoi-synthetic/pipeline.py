from scorehoi_diffusers import ScoreHOIPipeline  # noqa: F401
