"""The README's Python examples run as written and print what they claim; its Quickstart names
the commands CI runs."""

from __future__ import annotations

import math
import re

import pytest

from tests.conftest import REPO

README = (REPO / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
NUMBER = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"


def numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(NUMBER, text)]


def check_training_loop(out: str) -> None:
    """``h(w*) B  hinge H`` once per batch (3 batches): finite, non-negative losses."""
    lines = out.strip().splitlines()
    assert len(lines) == 3, out
    for line in lines:
        match = re.fullmatch(rf"h\(w\*\) ({NUMBER})  hinge ({NUMBER})", line)
        assert match, line
        base, hinge = float(match[1]), float(match[2])
        assert 0 < base < 10 and 0 <= hinge < 10, line  # MSE of N(0, 1) data is about 1


def check_rotation_example(out: str) -> None:
    """``tensor(hinge) tensor(rate)``: h = |R_pred - R|^2 around an unrelated R* is not
    star-convex about R*, so the adversarial hinge and the violation rate are positive."""
    values = numbers(out)
    assert len(values) == 2, out
    hinge, rate = values
    assert hinge > 0 and 0 < rate <= 1, out


CHECKS = {"for x, y in": check_training_loop, "violation_rate(h, r_star": check_rotation_example}


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_example_runs(index: int, capsys: pytest.CaptureFixture) -> None:
    block = PYTHON_BLOCKS[index]
    exec(compile(block, f"README.md python block {index}", "exec"), {})
    out = capsys.readouterr().out
    checks = [check for marker, check in CHECKS.items() if marker in block]
    if checks:
        checks[0](out)
    else:  # a new example: it prints finite numbers at least
        assert numbers(out) and all(math.isfinite(x) for x in numbers(out)), out


def test_every_known_example_is_still_in_the_readme() -> None:
    for marker in CHECKS:
        assert any(marker in block for block in PYTHON_BLOCKS), marker


def test_quickstart_test_command_is_the_one_ci_runs() -> None:
    start = README.index("## Quickstart")
    quickstart = README[start:README.index("\n## ", start + 1)]
    commands = re.findall(r"```bash\n(.*?)\n```", quickstart, flags=re.S)
    assert len(commands) == 2
    assert commands[1] in (REPO / ".ci" / "run").read_text()
    assert "python -m bench run smoke" in commands[0]
