"""One option vocabulary and one exit-code table across every rtmw command."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from rtmw.cli import bench, calib, demo, export, inspect, train
from rtmw.cli._common import EXIT_CODES, VOCABULARY

COMMANDS: dict[str, click.Command] = {
    "rtmw-export": export.main,
    "rtmw-calib": calib.main,
    "rtmw-inspect": inspect.main,
    "rtmw-train": train.main,
    "rtmw-demo": demo.main,
    "rtmw-bench run": bench.main.commands["run"],  # type: ignore[attr-defined]
    "rtmw-bench gate": bench.main.commands["gate"],  # type: ignore[attr-defined]
    "rtmw-bench report": bench.main.commands["report"],  # type: ignore[attr-defined]
    "rtmw-bench baseline": bench.main.commands["baseline"],  # type: ignore[attr-defined]
}


def _options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option)]


@pytest.mark.parametrize("name", COMMANDS)
def test_quiet_and_verbose_everywhere(name: str) -> None:
    flags = {opt for p in _options(COMMANDS[name]) for opt in p.opts}
    assert {"-q", "--quiet", "-v", "--verbose"} <= flags, name


@pytest.mark.parametrize("name", COMMANDS)
def test_exit_code_table_in_every_help(name: str) -> None:
    text = CliRunner().invoke(COMMANDS[name], ["--help"]).output
    assert "Exit codes:" in text
    for code in EXIT_CODES:
        assert f"  {code} " in text, (name, code)


def test_same_flag_for_the_same_thing() -> None:
    """A concept (the parameter it fills) is spelled the same in every command, and a
    flag means the same concept in every command."""
    concept_flags: dict[str, set[str]] = {}
    flag_concepts: dict[str, set[str]] = {}
    for command in COMMANDS.values():
        for param in _options(command):
            assert param.name is not None
            concept_flags.setdefault(param.name, set()).add(param.opts[0])
            for opt in param.opts:
                flag_concepts.setdefault(opt, set()).add(param.name)
    for concept, flags in concept_flags.items():
        assert len(flags) == 1, f"{concept} is spelled {sorted(flags)}"
        if concept in VOCABULARY:
            assert flags == {VOCABULARY[concept][0]}, concept
    for flag, concepts in flag_concepts.items():
        assert len(concepts) == 1, f"{flag} means {sorted(concepts)}"


def test_retired_spellings_are_hidden_but_accepted() -> None:
    help_text = CliRunner().invoke(bench.main, ["run", "--help"]).output
    assert "--images" in help_text and "--data" not in help_text
    assert "--dets" in CliRunner().invoke(calib.main, ["--help"]).output
    assert "--boxes" not in CliRunner().invoke(calib.main, ["--help"]).output
    parsed = bench.main.commands["run"].make_context(  # type: ignore[attr-defined]
        "run", ["a", "--data", "imgs", "--out", "o"]
    )
    assert parsed.params["image_dir"] == "imgs"


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("rtmw-export", ["--list", "--opset", "x"]),
        ("rtmw-calib", ["--images", ".", "--out", "c.npz", "--input-size", "1x1"]),
        ("rtmw-inspect", []),
        ("rtmw-train", ["--iters", "x", "--out", "o"]),
        ("rtmw-demo", ["--val-images", "many"]),
        ("rtmw-bench run", ["--out", "o"]),
        ("rtmw-bench gate", ["--reference", "only-one.json"]),
        ("rtmw-bench report", []),
        ("rtmw-bench baseline", ["--batch", "0"]),
    ],
)
def test_usage_errors_exit_2(name: str, args: list[str]) -> None:
    result = CliRunner().invoke(COMMANDS[name], args)
    assert result.exit_code == 2, (name, result.output)


def test_unknown_target_is_usage_everywhere(tmp_path: Path) -> None:
    out = str(tmp_path / "o")
    for command, args in (
        (export.main, ["ck.pth", "--targets", "coreml", "--out", out]),
        (bench.main, ["gate", "ck.pth", "--targets", "coreml", "--images", ".", "--ann", "a",
                      "--out", out]),
    ):  # fmt: skip
        result = CliRunner().invoke(command, args)
        assert result.exit_code == 2, result.output
        assert "unknown target 'coreml'" in result.output
    from rtmw.logs import run_log

    assert run_log() is None  # the command's log ended with it: later records go elsewhere


def test_demo_cli_default_is_the_demo_settings() -> None:
    """rtmw-demo spells its default without importing the workflow (fast --help)."""
    from rtmw.cli.demo import main
    from rtmw.workflows.demo import DemoSettings

    option = next(p for p in main.params if p.name == "val_images")
    assert option.default == DemoSettings.val_images
