"""The README is the front door: its quick-start commands must be the ones that work."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT


def _bash_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    test_command = next(b for b in _bash_blocks(readme) if b.endswith("python -m pytest"))
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_quick_start_runs_the_quick_study_on_its_built_in_default() -> None:
    from sim2real.cli import DEFAULT_STUDY, default_config

    readme = (ROOT / "README.md").read_text()
    main_command = _bash_blocks(readme)[0]
    assert main_command.endswith("&& sim2real study")
    assert Path(default_config(DEFAULT_STUDY)).resolve() == ROOT / "configs" / "inverted_double_pendulum" / "study.yaml"


def test_the_train_script_the_readme_names_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    script = re.search(r"`python (scripts/\S+\.py)`", readme)
    assert script and (ROOT / script.group(1)).is_file()
