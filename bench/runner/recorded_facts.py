"""The facts a (task, model) runs under, as its runs recorded them, else from the registry.

`learn(runs)` remembers the facts (`bench.tasks.facts.RunFacts`) and families a runs table holds
(the report, the protocol report and the verdicts' callers pass the tables they read); `lookup`
answers from them, and for a run folder written before run.json held facts, from the family's
declaration (`registered`: every `Task` subclass the registry imports), the family being the
one the task class its gin file binds declares (`registered_family`). Nothing is parsed out of a
task's name. torch and gin are imported only by the registry fallback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

from bench.tasks.facts import Facts, RunFacts

#: facts recorded in run.json, learned from runs tables: (task, model) -> RunFacts
_RECORDED: dict[tuple[str, str], RunFacts] = {}
#: families recorded in runs tables: task -> family
_FAMILIES: dict[str, str] = {}


def learn(runs: Any) -> None:
    """Remember the facts and families a runs table (a DataFrame with `task`, `model` and,
    where recorded, `facts` (JSON text) and `family` columns) holds."""
    if runs is None or not len(runs) or "task" not in runs:
        return
    families = runs["family"] if "family" in runs else [None] * len(runs)
    texts = runs["facts"] if "facts" in runs else [None] * len(runs)
    for task, model, family, text in zip(runs["task"], runs["model"], families, texts):
        if isinstance(family, str) and family:
            _FAMILIES[str(task)] = family
        if isinstance(text, str) and text:
            _RECORDED[(str(task), str(model))] = RunFacts.from_dict(json.loads(text))
            _FAMILIES[str(task)] = _RECORDED[(str(task), str(model))].family


def lookup(task: str, model: str = "") -> RunFacts:
    """The facts of `task` (with `model`; '' for the family-level facts): as recorded by a run
    (`learn`), else from the registry (the family's `Facts`); empty facts for a task whose family
    is unknown."""
    recorded = _RECORDED.get((task, model))
    if recorded is not None:
        return recorded
    if not model:
        same_task = [f for (t, _), f in _RECORDED.items() if t == task]
        if same_task:
            return same_task[0].without_model()
    family = _FAMILIES.get(task) or registered_family(task)
    facts = registered().get(family)
    return facts.resolve(task, model) if facts else RunFacts(family=family)


def family_of(task: str) -> str:
    """The family of `task`: recorded, else the registry's ('' when unknown)."""
    return _FAMILIES.get(task) or lookup(task).family


@functools.cache
def registered() -> dict[str, Facts]:
    """family -> `Facts` of every task class the registry imports (`bench.runner.registry`)."""
    import bench.runner.registry  # noqa: F401  (registers every family; imports torch)
    from bench.tasks.base import Task

    out: dict[str, Facts] = {}
    for cls in _subclasses(Task):
        if cls.facts.family:
            out.setdefault(cls.facts.family, cls.facts)
    return out


def _subclasses(cls: type) -> Iterable[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@functools.cache
def registered_family(task: str) -> str:
    """The family of the task class `gin/tasks/<task>.gin` binds ('' when there is no such file
    or it binds no task): for runs recorded before run.json held a family."""
    from bench.runner.config import ConfigError, resolve
    from bench.runner.matrix import task_family

    try:
        path = resolve("tasks", task)
        return task_family([path], ()) if path.is_file() else ""
    except (ConfigError, OSError, ValueError):
        return ""
