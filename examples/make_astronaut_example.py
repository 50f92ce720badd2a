"""Make the shipped non-synthetic example: a photo with hand-drawn masks, as a user would make them.

The photo is scikit-image's ``astronaut`` (NASA, public domain): Eileen Collins with her helmet. The masks are
a few polygons and an ellipse drawn by hand from the picture, nothing learned. Run from the repo root:
``.venv/bin/python examples/make_astronaut_example.py`` (needs scikit-image, in the ``dev`` extra).
"""
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parents[1] / "scorehoi_diffusers" / "assets" / "examples" / "astronaut"

PERSON = [  # outline of head, suit and arms, pixel (x, y)
    (18, 512), (22, 420), (30, 330), (45, 280), (80, 240), (120, 205), (150, 175), (165, 150),
    (160, 110), (165, 60), (190, 25), (230, 15), (270, 25), (295, 55), (300, 95), (290, 140),
    (300, 160), (330, 200), (355, 255), (362, 330), (330, 390), (290, 420), (275, 512),
]
HELMET = (275, 340, 512, 540)  # ellipse bounding box (x0, y0, x1, y1), cut by the image border


def main() -> None:
    from skimage import data

    image = Image.fromarray(data.astronaut())
    OUT.mkdir(parents=True, exist_ok=True)
    image.save(OUT / "image.jpg", quality=92)
    size = image.size
    person = Image.new("L", size, 0)
    ImageDraw.Draw(person).polygon(PERSON, fill=255)
    helmet = Image.new("L", size, 0)
    ImageDraw.Draw(helmet).ellipse(HELMET, fill=255)
    # The helmet is in front of the suit: remove it from the person mask.
    person = Image.fromarray(np.where(np.asarray(helmet) > 0, 0, np.asarray(person)).astype(np.uint8))
    person.save(OUT / "human_mask.png")
    helmet.save(OUT / "object_mask.png")
    (OUT / "example.json").write_text(json.dumps({
        "image": "image.jpg", "human_mask": "human_mask.png", "object_mask": "object_mask.png",
        "object": "ball", "source": "scikit-image astronaut (NASA, public domain); masks drawn by hand",
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
