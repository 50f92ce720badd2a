"""Peak memory of ``scorehoi reconstruct`` on a very large photo (the README's memory bound: <= 2 GB).

The shipped astronaut example (512 x 512 photo with hand-drawn masks) is scaled up to ``--width`` x ``--height``
(bilinear photo, nearest-neighbour masks) in a temporary folder, and the command runs on it in a fresh process under
``/usr/bin/time -v``, whose "Maximum resident set size" is the peak. Two runs: with both masks (the person detector
then only reads keypoints from a downscaled copy) and with ``--object-box`` only (the detector finds the person and
GrabCut cuts the object). Run from the repo root: ``python benchmarks/peak_memory.py`` (about a minute per run).
"""
import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLE = Path(__file__).resolve().parents[1] / "scorehoi_diffusers" / "assets" / "examples" / "astronaut"
SCOREHOI = Path(sys.executable).with_name("scorehoi")


def scaled_inputs(folder: Path, width: int, height: int) -> tuple[Path, Path, Path, list[str]]:
    """The example's photo and masks at ``width x height`` in ``folder``, and its object box there (x y w h)."""
    photo = Image.open(EXAMPLE / "image.jpg").convert("RGB")
    sx, sy = width / photo.width, height / photo.height
    paths = folder / "photo.jpg", folder / "person.png", folder / "object.png"
    photo.resize((width, height), Image.Resampling.BILINEAR).save(paths[0], quality=90)
    for name, path in zip(("human_mask.png", "object_mask.png"), paths[1:]):
        Image.open(EXAMPLE / name).resize((width, height), Image.Resampling.NEAREST).save(path)
    rows, cols = np.nonzero(np.asarray(Image.open(EXAMPLE / "object_mask.png")) > 0)
    box = [cols.min() * sx, rows.min() * sy, (cols.max() + 1 - cols.min()) * sx, (rows.max() + 1 - rows.min()) * sy]
    return *paths, [f"{value:.0f}" for value in box]


def peak_gigabytes(arguments: list[str]) -> float:
    """Maximum resident set size (GB) of ``scorehoi`` run with ``arguments`` under ``/usr/bin/time -v``."""
    command = ["/usr/bin/time", "-v", str(SCOREHOI), "reconstruct", *arguments]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"scorehoi reconstruct {' '.join(arguments)} failed:\n{run.stderr[:2000]}")
    kilobytes = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
    return kilobytes / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=10000)
    parser.add_argument("--height", type=int, default=8000)
    parser.add_argument("--cycles", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photo, person, obj, box = scaled_inputs(folder, args.width, args.height)
        common = [str(photo), "--object", "ball", "--cycles", str(args.cycles), "--threads", "1", "--quiet"]
        runs = {
            "both masks": ["--human-mask", str(person), "--object-mask", str(obj), "--out", str(folder / "a")],
            "object box only": ["--object-box", *box, "--out", str(folder / "b")],
        }
        print(f"photo {args.width} x {args.height}, N = {args.cycles}")
        for name, extra in runs.items():
            print(f"{name}: peak {peak_gigabytes(common + extra):.2f} GB")


if __name__ == "__main__":
    main()
