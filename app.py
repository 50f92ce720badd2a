"""The web app as a Hugging Face Space (Gradio SDK): the Space runs ``python app.py``.

It is ``scorehoi app`` on the address and port the Space gives (``GRADIO_SERVER_NAME``/``GRADIO_SERVER_PORT``;
``0.0.0.0:7860`` otherwise). The weights, examples and the person detector's model ship inside the installed
packages, so the Space makes no network request at run time: the Hub is switched to offline mode. The README's
"Web app" section lists the files a Space needs beside this one.
"""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from scorehoi_diffusers.cli import main  # noqa: E402


def space_arguments() -> list[str]:
    """The ``scorehoi`` arguments that serve the app where the Space expects it."""
    return ["app", "--host", os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
            "--port", os.environ.get("GRADIO_SERVER_PORT", "7860")]


if __name__ == "__main__":
    sys.exit(main(space_arguments()))
