"""Make the shipped real-photo example with no hand-drawn mask: only a box around the object.

The photo is scikit-image's ``camera``: a man filming with a camera on a tripod (CC0 by the photographer, Lav
Varshney, as scikit-image's ``skimage.data.camera`` documentation states). ``scorehoi demo`` finds the person
with the bundled detector and cuts the object from ``object_box`` by GrabCut. The tripod stands in as the
shipped ``stool`` primitive (a legged stand; the tripod is taller, about 1.4 m). Run from the repo root:
``.venv/bin/python examples/make_cameraman_example.py`` (needs scikit-image, in the ``dev`` extra).
"""
import json
from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "scorehoi_diffusers" / "assets" / "examples" / "cameraman"

# x, y, w, h around the tripod's legs and head, read off the picture (the camera on top is in the person mask).
TRIPOD_BOX = [228, 200, 190, 312]


def main() -> None:
    from skimage import data

    OUT.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.camera()).save(OUT / "image.png")  # grey; the pipeline repeats it to RGB
    (OUT / "example.json").write_text(json.dumps({
        "image": "image.png", "object": "stool", "object_box": TRIPOD_BOX,
        "source": "scikit-image camera (the cameraman; CC0 by the photographer, Lav Varshney); no masks: the person "
                  "is detected, the tripod is cut from object_box and stood in for by the stool primitive",
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
