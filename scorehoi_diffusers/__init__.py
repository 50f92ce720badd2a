"""ScoreHOI as a diffusers pipeline."""
