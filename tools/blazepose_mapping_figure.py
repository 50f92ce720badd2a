"""Draw ``docs/blazepose_mapping.png``: where mediapipe's 33 BlazePose landmarks sit on the stand-in body.

The body is the licence-free stand-in in its rest pose, seen from the front (its left on the picture's right).
Each landmark with a body point (``skeleton.BLAZEPOSE_TO_BODY``) is drawn at that point, numbered in BlazePose
order: joints as circles, surface vertices (face, heels, toes) as squares. The landmarks without a body point are
listed. Close-ups show the face, the left hand and the left foot (from the side: heel and big toe).

Run from the repository root: ``python -m tools.blazepose_mapping_figure [--out docs/blazepose_mapping.png]``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from scorehoi_diffusers.body import BodyModel, blazepose_points  # noqa: E402
from scorehoi_diffusers.params import HOIParams  # noqa: E402
from scorehoi_diffusers.skeleton import BLAZEPOSE_NAMES, BLAZEPOSE_TO_BODY  # noqa: E402

JOINT_COLOUR, SURFACE_COLOUR = "#1f5fbf", "#d0541b"


# Views as (horizontal, vertical, towards the viewer) axes of the body's frame (y up, facing +z, left on +x).
FRONT, LEFT_SIDE = (0, 1, 2), (2, 1, 0)


def _draw_body(axis, vertices: np.ndarray, faces: np.ndarray, view=FRONT) -> None:
    """The mesh seen along ``view``, far triangles first, shaded by how much they face the viewer."""
    triangles = vertices[faces][:, :, list(view)]  # (F, 3, 3) in picture axes
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True).clip(min=1e-12)
    order = np.argsort(triangles[:, :, 2].mean(1))
    shade = 0.55 + 0.4 * np.abs(normals[order, 2])
    colours = np.stack([shade, shade, shade * 1.02, np.ones_like(shade)], 1).clip(0, 1)
    axis.add_collection(PolyCollection(triangles[order][:, :, :2], facecolors=colours, edgecolors="none"))


def _draw_points(axis, points: np.ndarray, numbers: list[int], label: bool = True, size: float = 34,
                 view=FRONT) -> None:
    for number in numbers:
        kind, _ = BLAZEPOSE_TO_BODY[BLAZEPOSE_NAMES[number]]
        colour, marker = (JOINT_COLOUR, "o") if kind == "joint" else (SURFACE_COLOUR, "s")
        x, y = points[number, list(view[:2])]
        axis.scatter([x], [y], s=size, c=colour, marker=marker, edgecolors="white", linewidths=0.6, zorder=3)
        if label:
            axis.annotate(str(number), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=7,
                          color=colour, weight="bold", zorder=4)


def draw(out: Path) -> None:
    body = BodyModel()
    params = HOIParams.identity(1)
    with torch.no_grad():
        output = body(params)
        points = blazepose_points(output.joints, output.landmarks)[0].numpy()
    vertices, faces = output.vertices[0].numpy(), body.faces.cpu().numpy().astype(np.int64)
    mapped = [i for i, name in enumerate(BLAZEPOSE_NAMES) if BLAZEPOSE_TO_BODY[name] is not None]
    hands = {i for i, name in enumerate(BLAZEPOSE_NAMES)
             if name.split("_")[-1] in ("pinky", "index", "thumb") and "foot" not in name}
    face = {i for i in mapped if i <= 10}
    left_foot = {BLAZEPOSE_NAMES.index(name) for name in ("left_ankle", "left_heel", "left_foot_index")}

    figure = plt.figure(figsize=(12, 7.2), dpi=150)
    main = figure.add_axes((0.0, 0.03, 0.42, 0.9))
    _draw_body(main, vertices, faces)
    close_ups = face | hands | {BLAZEPOSE_NAMES.index(f"{side}_{part}") for side in ("left", "right")
                                for part in ("heel", "foot_index")}
    _draw_points(main, points, [i for i in mapped if i not in close_ups])
    _draw_points(main, points, sorted(close_ups), label=False, size=14)
    main.set_title("Stand-in body, rest pose, front view\n(its left on the picture's right)", fontsize=9)

    left_hand = {i for i in hands if "left" in BLAZEPOSE_NAMES[i]} | {BLAZEPOSE_NAMES.index("left_wrist")}
    for box, numbers, title, view in (((0.41, 0.66, 0.2, 0.28), face, "face", FRONT),
                                      ((0.41, 0.35, 0.2, 0.28), left_hand, "left hand", FRONT),
                                      ((0.41, 0.03, 0.2, 0.28), left_foot, "left foot, from the side", LEFT_SIDE)):
        axis = figure.add_axes(box)
        _draw_body(axis, vertices, faces, view)
        _draw_points(axis, points, sorted(numbers), size=40, view=view)
        seen = points[sorted(numbers)][:, list(view[:2])]
        centre = seen.mean(0)
        half = 1.6 * np.abs(seen - centre).max() + 0.02
        axis.set_xlim(centre[0] - half, centre[0] + half)
        axis.set_ylim(centre[1] - half, centre[1] + half)
        axis.set_title(f"close-up: {title}", fontsize=9)

    for axis in figure.axes:
        axis.set_aspect("equal")
        axis.axis("off")
    main.autoscale_view()

    lines = []
    for number, name in enumerate(BLAZEPOSE_NAMES):
        target = BLAZEPOSE_TO_BODY[name]
        where = "— (no body point)" if target is None else f"{target[0]} {target[1]}"
        lines.append(f"{number:2d}  {name:<17s} {where}")
    text = figure.add_axes((0.62, 0.03, 0.38, 0.94))
    text.axis("off")
    text.text(0, 1, "BlazePose landmark → body point\n(skeleton.BLAZEPOSE_TO_BODY)", fontsize=9, weight="bold",
              va="top")
    text.text(0, 0.925, "\n".join(lines), family="monospace", fontsize=7.4, va="top", linespacing=1.38)
    text.scatter([0.02], [0.035], s=40, c=JOINT_COLOUR, marker="o")
    text.text(0.05, 0.035, "SMPL-H joint", fontsize=8, va="center")
    text.scatter([0.32], [0.035], s=40, c=SURFACE_COLOUR, marker="s")
    text.text(0.35, 0.035, "surface vertex (landmark)", fontsize=8, va="center")
    text.set_xlim(0, 1)
    text.set_ylim(0, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=150)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/blazepose_mapping.png"))
    draw(parser.parse_args().out)


if __name__ == "__main__":
    main()
