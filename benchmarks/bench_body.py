"""Body model speed: smplx full forward vs. subset skinning, batch 1 and 8, on this machine's CPU.

Run: .venv/bin/python benchmarks/bench_body.py [--model-path PATH]
"""
import argparse
import time

import torch

from scorehoi_diffusers.body import BodyModel
from scorehoi_diffusers.params import HOIParams


def timed(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-path", default=None, help="SMPL-H .npz (default: the stand-in body)")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    body = BodyModel(model_path=args.model_path)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {body.num_vertices} vertices, "
          f"{body.num_downsampled} downsampled")
    for batch in (1, 8):
        params = HOIParams.identity(batch)
        with torch.no_grad():
            full = timed(lambda: body(params), args.repeats)
            subset = timed(lambda: body.skin_subset(params), args.repeats)
        print(f"batch {batch}: full forward {full * 1e3:7.2f} ms | subset skinning {subset * 1e3:7.2f} ms "
              f"| ratio {full / subset:5.1f}x")


if __name__ == "__main__":
    main()
