"""The README's Python examples run as written, and its Quickstart names the commands CI runs."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO

README = (REPO / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_example_runs(index: int, capsys: pytest.CaptureFixture) -> None:
    exec(compile(PYTHON_BLOCKS[index], f"README.md python block {index}", "exec"), {})
    assert capsys.readouterr().out  # every example prints what it computed


def test_quickstart_test_command_is_the_one_ci_runs() -> None:
    start = README.index("## Quickstart")
    quickstart = README[start:README.index("\n## ", start + 1)]
    commands = re.findall(r"```bash\n(.*?)\n```", quickstart, flags=re.S)
    assert len(commands) == 2
    assert commands[1] in (REPO / ".ci" / "run").read_text()
    assert "python -m bench run smoke" in commands[0]
