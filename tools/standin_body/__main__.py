"""Command line: ``python -m tools.standin_body --out PATH`` regenerates the stand-in body asset."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from scorehoi_diffusers.standin_body import STANDIN_BODY_PATH

from . import write_standin_body


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Regenerate the licence-free stand-in SMPL-H body.")
    parser.add_argument("--out", type=Path, default=STANDIN_BODY_PATH, help="output .npz path")
    parser.add_argument("--resolution", type=float, default=0.002, help="grid spacing at the hands (m)")
    parser.add_argument("--target-vertices", type=int, default=7000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = write_standin_body(args.out, resolution=args.resolution, target_vertices=args.target_vertices,
                              seed=args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
