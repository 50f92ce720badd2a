"""Data sources that yield the sample schema of :mod:`scorehoi_diffusers.data.schema`."""
