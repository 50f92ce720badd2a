"""Draw ``docs/architecture.png``: the package's layers, bottom up, with their modules.

Run from the repository root: ``python -m tools.architecture_figure``.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

# Top to bottom, as the picture reads; arrows (imports) point down only.
LAYERS = (
    ("entry points",
     "cli.py  ·  web_app.py (scorehoi app)  ·  training/  ·  benchmarks/  ·  tools/ (asset generators)", "#e8e8e8"),
    ("data & evaluation", "data/schema  ·  data/synthetic/  ·  data/behave  ·  metrics  ·  evaluation  ·  export",
     "#f6e3c6"),
    ("pipeline", "ScoreHOIPipeline: check_inputs → photo_inputs → prepare_initial_estimate → cycles → meshes",
     "#f3c9a6"),
    ("learned models", "ScoreHOIDenoiser  ·  ScoreHOIRegressor  ·  ScoreHOIContactEstimator  ·  GuidedDDIMScheduler",
     "#e9b7b7"),
    ("pictures", "image_processor  ·  data/crop  ·  rendering  ·  person_detection  ·  object_mask", "#cfe0f3"),
    ("geometry", "BodyModel (smplx + subset skinning)  ·  ObjectTemplate (SDF grid)  ·  stand-in body", "#c9e7d3"),
    ("pure maths", "kinematics (FK, skinning)  ·  point_sampling  ·  signed_distance_grid  ·  guidance terms",
     "#dcd3ef"),
    ("tables & rules", "skeleton  ·  params (x0 layout, codec)  ·  contacts  ·  camera  ·  input_checks", "#f1f1c4"),
)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def draw(path: Path) -> Path:
    width, row, gap, margin = 1200, 70, 14, 30
    height = margin * 2 + len(LAYERS) * row + (len(LAYERS) - 1) * gap
    image = Image.new("RGB", (width, height), "white")
    canvas = ImageDraw.Draw(image)
    title, body = _font(20), _font(16)
    for i, (name, modules, colour) in enumerate(LAYERS):
        top = margin + i * (row + gap)
        canvas.rounded_rectangle((margin, top, width - margin, top + row), radius=10, fill=colour, outline="#555")
        canvas.text((margin + 16, top + 10), name, fill="black", font=title)
        canvas.text((margin + 16, top + 40), modules, fill="#222", font=body)
        if i < len(LAYERS) - 1:
            x, y = width - margin - 40, top + row
            canvas.line((x, y, x, y + gap), fill="#555", width=3)
            canvas.polygon(((x - 6, y + gap - 6), (x + 6, y + gap - 6), (x, y + gap)), fill="#555")
    image.save(path)
    return path


if __name__ == "__main__":
    print(draw(Path(__file__).resolve().parents[1] / "docs" / "architecture.png"))
