"""A cell's identity, in two parts: what it trains and how it is evaluated.

A cell's config text (the gin files with includes inlined, then the bindings) is split statement
by statement:

* **evaluation statements** bind a parameter that only evaluation reads: a configurable declares
  them in its class attribute `EVALUATION_PARAMETERS` (a set of parameter names, or `"*"` for
  every parameter, as the metric classes do). `Experiment` declares its evaluation batch size and
  landscape settings, `Task` its `metrics`;
* every other statement, imports and bindings of configurables that declare nothing included, is a
  **training statement** (when in doubt, a change retrains).

`training_key` hashes the training statements (with the seed, the package version and a parent's
training key), `evaluation_key` the evaluation statements, and the cell's `key` both. The run
folder is named after the training key, so changing only a metric, the landscape settings or the
evaluation batch size keeps the folder and its weights: the runner re-evaluates the saved weights
instead of retraining (`bench.runner.cell_runner`). Statements are compared in a normal form (scope,
selector, parameter, the parsed value's repr), so comments, blank lines, spacing and the block
syntax `Configurable:\\n    param = value` never change a key.
"""

from __future__ import annotations

import hashlib

from gin import config as gin_config
from gin import config_parser

from bench import __version__

#: statement kinds in a split config
TRAINING, EVALUATION = "training", "evaluation"


def _evaluation_parameters(selector: str) -> frozenset[str] | str:
    """The evaluation-only parameters the configurable `selector` declares (`"*"`: all)."""
    try:
        match = gin_config._REGISTRY.get_match(selector)  # noqa: SLF001 - gin has no public lookup
    except (KeyError, ValueError):
        return frozenset()
    if match is None:
        return frozenset()
    declared = getattr(match.wrapped, "EVALUATION_PARAMETERS", frozenset())
    return declared if declared == "*" else frozenset(declared)


def statements(config_text: str) -> list[tuple[str, str]]:
    """`(kind, normal form)` of every statement of `config_text`, in order. Imports and bindings
    are kept; block headers carry nothing of their own (their parameters are statements)."""
    parser = config_parser.ConfigParser(config_text, gin_config.ParserDelegate(skip_unknown=True))
    out = []
    for statement in parser:
        if isinstance(statement, config_parser.BindingStatement):
            scope = f"{statement.scope}/" if statement.scope else ""
            name = ".".join(n for n in (statement.selector, statement.arg_name) if n)
            normal = f"{scope}{name} = {statement.value!r}"
            declared = _evaluation_parameters(statement.selector) if statement.selector else ()
            evaluation = declared == "*" or statement.arg_name in declared
            out.append((EVALUATION if evaluation else TRAINING, normal))
        elif isinstance(statement, config_parser.ImportStatement):
            out.append((TRAINING, f"import {statement.module}"))
        elif isinstance(statement, config_parser.IncludeStatement):
            out.append((TRAINING, f"include {statement.filename!r}"))
    return out


def split_config(config_text: str) -> tuple[str, str]:
    """(training statements, evaluation statements) of `config_text`, one per line, normal form."""
    parts = statements(config_text)
    return ("\n".join(s for kind, s in parts if kind == TRAINING) + "\n",
            "\n".join(s for kind, s in parts if kind == EVALUATION) + "\n")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def training_key(training_text: str, seed: int, parent_training_key: str = "") -> str:
    """sha256 of the training statements, the seed, the package version and, for a cell that
    starts from another's weights, that cell's training key."""
    blob = f"{training_text}\n# seed={seed}\n# dlc-bench={__version__}\n"
    if parent_training_key:
        blob += f"# init_from={parent_training_key}\n"
    return _sha(blob)


def evaluation_key(evaluation_text: str) -> str:
    """sha256 of the evaluation statements and the package version."""
    return _sha(f"{evaluation_text}\n# dlc-bench={__version__}\n")


def cell_keys(config_text: str, seed: int, parent_training_key: str = "") -> tuple[str, str, str]:
    """(key, training key, evaluation key) of a cell: `key` hashes the other two."""
    training, evaluation = split_config(config_text)
    train = training_key(training, seed, parent_training_key)
    evaluate = evaluation_key(evaluation)
    return _sha(f"{train}\n{evaluate}\n"), train, evaluate
