"""The generated reference pages (docs/reference/): current, complete, and true to the schema and the parser."""

from __future__ import annotations

import argparse
import re
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import render_reference


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return render_reference.render()


def _rows(text: str) -> list[list[str]]:
    """The cells of every table row of ``text``, code spans and escapes removed."""
    rows = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = re.split(r"(?<!\\)\|", line)[1:-1]
            rows.append([c.strip().replace("\\|", "|").replace("&lt;", "<").strip("`") for c in cells])
    return rows


def _section(text: str, title: str) -> str:
    """The ``##`` section of the page headed ``title`` (in backticks), up to the next ``##``."""
    return text.split(f"\n## `{title}`\n", 1)[1].split("\n## ", 1)[0]


def test_committed_reference_pages_are_current(pages: dict[str, str]) -> None:
    stale = render_reference.stale(ROOT, pages)
    assert not stale, f"{', '.join(stale)} stale: run python scripts/render_reference.py and commit the result"


def test_config_reference_gives_real_types_and_defaults(pages: dict[str, str]) -> None:
    from sim2real.config import Config, TrainConfig, TransferConfig

    rows = {row[0]: row[1:] for row in _rows(pages["docs/reference/config.md"])}
    assert rows["train.n_envs"][:2] == ["int in [1, 256]", str(TrainConfig.model_fields["n_envs"].default)]
    assert rows["transfer.keep"][:2] == ["'best' | 'last'", TransferConfig.model_fields["keep"].default]
    assert rows["transfer.guard.rollback.margin"][:2] == ["float in (0, 1)", "0.2"]
    assert rows["transfer.guard"][1:] == ["{}", "the negative-transfer guard (best policy, rollback); null: off"]
    assert rows["source.dynamics[].scale"][0] == "float | list[float] | distribution | null"
    assert rows["env"][1] == "required"
    # Every field of a file, and of a section several levels down, has its row.
    assert {f"transfer.{name}" for name in TransferConfig.model_fields} <= rows.keys()
    assert {name for name in Config.model_fields} <= rows.keys()
    assert {"sweeps[].params[].points", "sources.<name>.identify.record.policy", "variants.<name>.transfer_from"} <= (
        rows.keys()
    )


def test_config_reference_gives_each_algorithm_its_own_defaults(pages: dict[str, str]) -> None:
    text = pages["docs/reference/config.md"]
    for name, net_arch in (("ppo", "[64, 64]"), ("sac", "[256, 256]"), ("recurrent_ppo", "[64, 64]")):
        section = text.split(f"#### `algo.name: {name}`\n", 1)[1].split("\n#### ", 1)[0].split("\n### ", 1)[0]
        rows = {row[0]: row[1:] for row in _rows(section)}
        assert rows["algo.name"][0] == f"'{name}'"
        assert rows["algo.net_arch"][1] == net_arch


def test_cli_reference_gives_every_flag_with_its_real_default(pages: dict[str, str]) -> None:
    from sim2real.cli import _parser

    text = pages["docs/reference/cli.md"]
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in commands.choices.items():
        section = _section(text, f"sim2real {name}")
        assert f"usage: sim2real {name} " in section
        rows = {row[0]: row[1:] for row in _rows(section)}
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            row = rows[", ".join(action.option_strings) or render_reference._metavar(action)]
            if action.required:
                assert row[1] == "required"
            elif isinstance(action.default, int | float | str) and not isinstance(action.default, bool):
                assert row[1] == str(action.default), (name, action.dest)
    evaluate = {row[0]: row[1:] for row in _rows(_section(text, "sim2real evaluate"))}
    assert evaluate["--set"][0] == "FIELD=VALUE"
    assert evaluate["--n-envs"][1] == "16"
    assert {row[0]: row[1:] for row in _rows(_section(text, "sim2real study"))}["--backend"][:2] == [
        "{local,ray}",
        "local",
    ]
    assert "--set" in {row[0] for row in _rows(_section(text, "scripts/train_<env>.py"))}


def test_pages_depend_on_neither_the_terminal_nor_the_machine(
    pages: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    assert render_reference.render() == pages
    for text in pages.values():
        assert str(ROOT) not in text
        assert not re.search(r"(?<![\w.])/(home|tmp|usr|root|work)/", text)


def test_check_names_the_stale_page_and_writes_nothing(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert render_reference.main(["--check"], root=tmp_path) == 1  # nothing rendered yet: both pages are stale
    assert not (tmp_path / "docs").exists()
    assert render_reference.main([], root=tmp_path) == 0
    assert render_reference.main(["--check"], root=tmp_path) == 0
    page = tmp_path / "docs" / "reference" / "config.md"
    page.write_text(page.read_text().replace("`train.n_envs`", "`train.n_env`"))
    edited = page.read_text()
    capsys.readouterr()
    assert render_reference.main(["--check"], root=tmp_path) == 1
    assert "docs/reference/config.md is stale" in capsys.readouterr().err
    assert page.read_text() == edited


def test_every_relative_link_in_the_docs_leads_to_a_file() -> None:
    """README.md is the front door and docs/ the guide: a link a reader follows must open something."""
    pages = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = [
        f"{page.relative_to(ROOT)}: {target}"
        for page in pages
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text())
        if "://" not in target and not (page.parent / target).exists()
    ]
    assert not broken, broken
