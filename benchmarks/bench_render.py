"""Time `scorehoi_diffusers.rendering.render` on a ~10k-face sphere filling most of the frame.

Usage: python benchmarks/bench_render.py [--repeats 20]
Prints milliseconds per frame (median over repeats) for 256² and 512², with and without a floor.
"""
import argparse
import statistics
import time

import numpy as np
import trimesh

from scorehoi_diffusers.rendering import OBJECT_COLOR, Floor, MeshLayer, render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    sphere = trimesh.creation.uv_sphere(radius=0.5, count=(51, 51))
    sphere.apply_translation([0.0, 0.0, 2.0])
    layer = MeshLayer(sphere.vertices, sphere.faces, OBJECT_COLOR, "sphere")
    floor = Floor(point=[0.0, 0.5, 2.0])
    print(f"mesh: {len(sphere.faces)} faces, embree: {trimesh.ray.has_embree}")
    for size in (256, 512):
        # A 40-degree vertical field of view: the sphere covers about a third of the frame's area.
        focal = 0.5 * size / np.tan(np.radians(20.0))
        K = np.array([[focal, 0.0, 0.5 * (size - 1)], [0.0, focal, 0.5 * (size - 1)], [0.0, 0.0, 1.0]])
        for name, kwargs in (("mesh", {}), ("mesh + floor", {"floor": floor})):
            render([layer], K, (size, size), **kwargs)  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                render([layer], K, (size, size), **kwargs)
                times.append(time.perf_counter() - start)
            print(f"{size}x{size} {name:>13}: {1000 * statistics.median(times):7.1f} ms per frame")


if __name__ == "__main__":
    main()
