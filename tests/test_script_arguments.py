"""Every benchmark and training script imports and builds a command line whose defaults argparse can convert.

The scripts' own work is long (minutes to hours) and is not run here. What this catches is what broke a README
command before: a script that fails on its defaults before doing anything (argparse applies an argument's `type` to
a string default, so `type=float, default="default"` crashes every run that leaves the option out), or one that no
longer imports after a rename in the package. Each script runs as `__main__` up to its `parse_args` call, which is
stopped there; its parser is then checked the way argparse would use it.
"""
import argparse
import os
import runpy
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    path
    for folder in ("benchmarks", "training")
    for path in (REPO / folder).glob("*.py")
    if "parse_args(" in path.read_text()
)


class _StopAtParse(Exception):
    def __init__(self, parser):
        super().__init__("stopped at parse_args")
        self.parser = parser


def _parser_of(script: Path, monkeypatch) -> argparse.ArgumentParser:
    """Run `script` as `__main__` until it parses its command line; return that parser."""

    def stop(self, args=None, namespace=None):
        raise _StopAtParse(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    monkeypatch.setattr(sys, "argv", [str(script)])
    monkeypatch.syspath_prepend(str(script.parent))
    environment, threads = dict(os.environ), torch.get_num_threads()
    try:
        with pytest.raises(_StopAtParse) as stopped:
            runpy.run_path(str(script), run_name="__main__")
    finally:  # a script may set variables at import (bench_compile's inductor cache); other tests must not see them
        for name in set(os.environ) - set(environment):
            del os.environ[name]
        os.environ.update(environment)
    assert torch.get_num_threads() == threads, f"{script.name} changed torch's thread count before parsing"
    return stopped.value.parser


def test_every_script_with_a_command_line_is_found():
    names = {path.name for path in SCRIPTS}
    assert {"real_photos.py", "train_regressor.py", "choose_guidance.py", "keypoint_fit_cost.py"} <= names
    assert len(SCRIPTS) >= 30


def _check_defaults(parser: argparse.ArgumentParser, name: str) -> None:
    """Convert each string default with its `type`, as argparse does when an option is left out, and check choices."""
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        default = action.default
        if isinstance(default, str) and action.type is not None:
            default = action.type(default)
        if action.choices is not None and default is not None and not action.required:
            values = default if isinstance(default, list) else [default]
            assert all(value in action.choices for value in values), (
                f"{name}: default {default!r} of {action.dest} is not among {list(action.choices)}"
            )


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_script_defaults_convert(script, monkeypatch):
    _check_defaults(_parser_of(script, monkeypatch), script.name)


def test_the_check_catches_a_bad_string_default(tmp_path, monkeypatch):
    script = tmp_path / "bad_script.py"
    script.write_text(
        "import argparse\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--margin', type=float, default='default')\n"
        "parser.parse_args()\n"
    )
    with pytest.raises(ValueError, match="could not convert"):
        _check_defaults(_parser_of(script, monkeypatch), script.name)


def test_choose_guidance_reads_named_configs_and_names_a_bad_one():
    sys.path.insert(0, str(REPO / "training"))
    from choose_guidance import named_config

    assert named_config("shipped:") == ("shipped", {})
    assert named_config("direct:direct_inversion=true,inversion_iterations=0") == (
        "direct", {"direct_inversion": True, "inversion_iterations": 0})
    for text, message in (("direct", "NAME:FIELD=VALUE"), ("x:bogus=1", "'bogus' is not a GuidanceConfig field"),
                          ("x:scale=abc", "must be JSON")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            named_config(text)
