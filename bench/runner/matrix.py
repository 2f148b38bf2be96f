"""Matrix files and their expansion into cells.

A matrix is a gin file binding `bench.matrix.Matrix`:

    bench.matrix.Matrix.tasks = ['alignment1d_nonlinear']     # names under gin/tasks/ or paths
    bench.matrix.Matrix.models = ['conv1d']
    bench.matrix.Matrix.objectives = ['plain', 'dlc']
    bench.matrix.Matrix.seeds = [0, 1, 2]
    bench.matrix.Matrix.scale = 'smoke'                        # gin/scales/<scale>.gin
    bench.matrix.Matrix.bindings = []                          # extra bindings for every cell
    bench.matrix.Matrix.sweep = 'sweeps/smoke.gin'             # its sweep (`bench tune`), optional

A matrix may instead list `parts`, other matrix files (relative to `gin/`), one per task family,
each with its own axes: `bench.matrix.Matrix.parts = ['matrices/cpu/alignment1d.gin', ...]`.
`bench.matrix.Matrix.timeout = 3600` kills a cell after that many seconds (0: never; parts inherit
it; `--timeout` overrides it). Seeds are integers in [0, 2**32 - 1].

A cell is the composition `scales/<scale>.gin, scales/<scale>/<family>.gin, tasks/<t>.gin,
models/<m>.gin, objectives/<o>.gin` (the family is the `family` of the task class the task file
binds, e.g. `alignment1d`), then any `--gin_file`, then the matrix's and the command line's bindings
(later wins). Every cell is
parsed and built in the driver before anything runs, so a malformed config stops the run with the
file and line and writes nothing, and an incompatible combination is skipped with its reason.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gin

from bench.runner import prekey
from bench.runner.cell import MAX_SEED, Cell
from bench.runner.config import (
    GIN_ROOT,
    ConfigError,
    expand,
    parsed,
    resolve,
    setup_gin,
    where_bound,
)
from bench.runner.executors import Resources
from bench.runner.identity import cell_keys

if TYPE_CHECKING:  # imported where cells are built: loading a matrix needs neither torch nor pandas
    from bench.runner.experiment import Experiment


@gin.configurable(module="bench.matrix")
@dataclass
class Matrix:
    """The axes of an experiment matrix (see the module docstring)."""

    tasks: Sequence[str] = ()
    models: Sequence[str] = ()
    objectives: Sequence[str] = ()
    seeds: Sequence[int] = (0,)
    scale: str = "smoke"
    bindings: Sequence[str] = field(default_factory=list)
    parts: Sequence[str] = ()
    sweep: str = ""
    timeout: float = 0.0


def load_matrix(path: Path, _stack: tuple[Path, ...] = (), registry: bool = True) -> list[Matrix]:
    """Parse a matrix file in a clean gin state; returns its axes as plain data, one `Matrix`
    per part (a matrix without `parts` is its own single part). `registry=False`: without
    importing the task, model and objective modules (torch); a matrix file that binds one of
    their configurables then raises `ConfigError`."""
    path = Path(path).resolve()
    if path in _stack:
        raise ConfigError(f"{path}: matrix parts cycle: {' -> '.join(map(str, _stack + (path,)))}")
    with parsed([path], registry=registry):
        matrix = Matrix()
    if not matrix.parts:
        return [matrix]
    parts = [part for ref in matrix.parts
             for part in load_matrix(resolve("matrices", ref), _stack + (path,), registry)]
    for part in parts:  # a part without its own sweep or timeout uses its parent's
        part.sweep = part.sweep or matrix.sweep
        part.timeout = part.timeout or matrix.timeout
    return parts


def load_resources(path: Path) -> Resources:
    """The `bench.executors.Resources` bound in the matrix file `path` (defaults where unbound;
    a part's bindings are not read: resources are the top matrix's)."""
    with parsed([path]):
        return Resources()


def check_seeds(seeds: Sequence[object], where: str) -> None:
    """Every seed an int in [0, MAX_SEED], else `ConfigError` naming `where`."""
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"{where}: seed {seed!r}: expected an integer in [0, {MAX_SEED}]")


def check_budget(exp: Experiment, files: Sequence[Path], bindings: Sequence[str]) -> None:
    """Training and evaluation sizes that cannot run, as a `ConfigError` naming the binding."""
    from bench.tasks.base import Model  # (torch: only where cells are built)

    learned = exp.model.learned if isinstance(exp.model, Model) else True
    if exp.epochs < 0 or (exp.epochs == 0 and learned):
        raise ConfigError(
            f"{where_bound(files, bindings, 'bench.run.Experiment', 'epochs')}: "
            f"bench.run.Experiment.epochs = {exp.epochs}: expected >= 1 (0 only for a model with "
            "nothing to learn, `learned = False`, e.g. ICP)")
    if exp.lr < 0:
        raise ConfigError(f"{where_bound(files, bindings, 'bench.run.Experiment', 'lr')}: "
                          f"bench.run.Experiment.lr = {exp.lr}: expected >= 0")
    for name in ("batch_size", "eval_batch_size"):
        if getattr(exp, name) < 1:
            raise ConfigError(f"{where_bound(files, bindings, 'bench.run.Experiment', name)}: "
                              f"bench.run.Experiment.{name} = {getattr(exp, name)}: expected >= 1")
    if exp.eval_split == "val" and exp.task.val_fraction == 0:
        raise ConfigError(
            f"{where_bound(files, bindings, 'bench.tasks.splits.carve', 'fraction')}: "
            "bench.tasks.splits.carve.fraction = 0 leaves no validation split, but "
            "bench.run.Experiment.eval_split = 'val': bind a fraction in (0, 1)")


def task_family(files: Sequence[Path], bindings: Sequence[str]) -> str:
    """`family` of the task class that `files` + `bindings` bind to `Experiment.task`, read from
    the class without building it (`Task.family`)."""
    with parsed(files, bindings):
        try:
            reference = gin.query_parameter("bench.run.Experiment.task")
        except ValueError:
            raise ConfigError(f"{files[0]}: no task bound (bench.run.Experiment.task)") from None
    return str(getattr(reference.configurable.wrapped, "family", ""))


def family_scale(scale: str, family: str) -> list[Path]:
    """`gin/scales/<scale>/<family>.gin`, if any: the family's sizes at that scale. Only a cell's
    own family file is part of its config (and cache key), so editing one family's sizes never
    invalidates another family's results."""
    path = GIN_ROOT / "scales" / scale / f"{family}.gin"
    return [path] if family and path.is_file() else []


def restrict_tasks(parts: Sequence[Matrix], tasks: Sequence[str], source: Path) -> list[Matrix]:
    """`--tasks` on a matrix with parts: each part keeps the requested tasks of its own family
    (the family declared by the task class, `Task.family`) and parts left without a task drop
    out, so a task is never crossed with another family's models. Raises ConfigError naming the
    matrix file when a requested task belongs to no part's family."""
    @functools.cache  # each lookup parses gin: once per task, not once per part
    def family(task: str) -> str:
        try:
            return task_family([resolve("tasks", task)], ())
        except ConfigError:  # an unknown task file: reported below as matching no part
            return ""

    kept, matched = [], set()
    for part in parts:
        own = {family(t) for t in part.tasks}
        mine = [t for t in tasks if family(t) in own]
        matched.update(mine)
        if mine:
            kept.append(Matrix(**{**part.__dict__, "tasks": mine}))
    missing = [t for t in tasks if t not in matched]
    if missing:
        families = sorted({family(t) for p in parts for t in p.tasks})
        raise ConfigError(f"{source}: --tasks {', '.join(missing)}: no part of this matrix has "
                          f"that task family (families: {', '.join(families)})")
    return kept


def check_axis_names(matrix: Matrix) -> None:
    """A cell's run id starts with its task, model and objective file names (the stem), so within
    an axis two files may not share a name and no name may start with '.' (a leading '.' marks
    staging folders). Raises `ConfigError` naming the file(s)."""
    for axis, kind in (("tasks", "tasks"), ("models", "models"), ("objectives", "objectives")):
        seen: dict[str, Path] = {}
        for ref in getattr(matrix, axis):
            path, name = resolve(kind, ref), Path(str(ref)).stem  # the run id uses `name`
            if name.startswith("."):
                raise ConfigError(f"{path}: a {kind[:-1]} file name may not start with '.' (run "
                                  "folders are named after it, and a leading '.' marks staging "
                                  "folders); rename the file")
            if name in seen and seen[name] != path:
                raise ConfigError(f"bench.matrix.Matrix.{axis}: {seen[name]} and {path} are both "
                                  f"named {name!r}, and a cell's name must say which file it ran; "
                                  "rename one of them")
            seen[name] = path


@dataclass(frozen=True)
class _Built:
    """One (task, model, objective) combination, validated: what its cells share."""

    names: tuple[str, ...]
    files: list[Path]
    text: str
    skip_reason: str
    family: str
    init_from: str
    prekey: str  # `bench.runner.prekey.combination_prekey`


def matrix_inputs(matrix: Matrix, gin_files: Sequence[str] = (),
                  gin_bindings: Sequence[str] = ()) -> tuple[Path, list[Path], list[str]]:
    """(scale file, extra gin files, bindings) that every cell of `matrix` shares, after checking
    its axes, seeds, file names and timeout (`ConfigError` naming what is wrong)."""
    if not (matrix.tasks and matrix.models and matrix.objectives and matrix.seeds):
        raise ConfigError("a matrix needs at least one task, model, objective and seed")
    check_seeds(matrix.seeds, "bench.matrix.Matrix.seeds")
    check_axis_names(matrix)
    timeout = matrix.timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise ConfigError(f"bench.matrix.Matrix.timeout = {matrix.timeout}: expected seconds >= 0 "
                          "(0: never)")
    scale_file = resolve("scales", matrix.scale)
    extra = [resolve("", f) for f in gin_files]
    return scale_file, extra, list(matrix.bindings) + list(gin_bindings)


def combination_files(task: str, model: str, objective: str) -> tuple[list[Path], tuple[str, ...]]:
    """(task, model and objective files, their names in a run id) of one combination."""
    files = [resolve("tasks", task), resolve("models", model), resolve("objectives", objective)]
    return files, tuple(Path(str(n)).stem for n in (task, model, objective))


def expand_cells(
    matrix: Matrix,
    results: Path,
    gin_files: Sequence[str] = (),
    gin_bindings: Sequence[str] = (),
    device: str = "auto",
    prekeys: dict[str, dict[str, Any]] | None = None,
) -> list[Cell]:
    """Every (task, model, objective, seed) cell of `matrix`, validated, with skip reasons.
    `prekeys`, when given, receives each cell's pre-key and index entry (`bench.runner.prekey`).

    Raises `ConfigError` (file and line) on the first cell whose config does not parse or build.
    """
    from bench.runner.experiment import Experiment
    from bench.runner.pooling import config_id

    setup_gin()
    scale_file, extra, bindings = matrix_inputs(matrix, gin_files, gin_bindings)

    def build(task: str, model: str, objective: str) -> _Built:
        axes, names = combination_files(task, model, objective)
        family = task_family([scale_file, *axes, *extra], bindings)
        files = [scale_file, *family_scale(matrix.scale, family), *axes, *extra]
        with parsed(files, bindings):
            try:
                exp = Experiment()
                skip, reason = exp.skip()
                family, init_from = exp.family, exp.init_from
                if not skip:
                    check_budget(exp, files, bindings)
                    exp.objective.setup(exp.task)  # the objective checks its options here
            except ConfigError:
                raise
            except Exception as err:  # noqa: BLE001 - report which cell failed to build
                raise ConfigError(
                    f"cell (task={task}, model={model}, objective={objective}) does not build: "
                    f"{type(err).__name__}: {err}") from err
        text = expand(files) + "".join(f"# --- binding\n{b}\n" for b in bindings)
        key = prekey.combination_prekey(matrix.scale, [scale_file, *axes, *extra], bindings, names)
        return _Built(names, files, text, reason if skip else "", family, init_from, key)

    def cell(built: _Built, seed: int, parent: Cell | None = None) -> Cell:
        text = built.text
        skip_reason = built.skip_reason
        if parent is not None:  # the parent's identity is part of the child's
            text += f"# --- init_from {parent.run_id} key={parent.key}\n"
            if parent.skip_reason and not skip_reason:
                skip_reason = f"its init_from cell {parent.run_id} is skipped: {parent.skip_reason}"
        key, train_key, eval_key = cell_keys(text, seed, parent.train_key if parent else "")
        identity = config_id(built.text, parent.config_id if parent is not None else "")
        names = built.names
        return Cell(
            run_id=f"{names[0]}-{names[1]}-{names[2]}-s{seed}-{train_key[:8]}",
            key=key, train_key=train_key, eval_key=eval_key, task=names[0], model=names[1], objective=names[2], seed=int(seed),
            scale=matrix.scale, config_text=text, results=str(results), family=built.family,
            files=tuple(str(f) for f in built.files), bindings=tuple(bindings),
            device=device, skip_reason=skip_reason, parent=parent.run_id if parent else "",
            timeout=float(matrix.timeout), config_id=identity,
        )

    def indexed(built: _Built, seed: int, parent: _Built | None = None) -> Cell:
        """`cell(...)`, its entry added to `prekeys` (with its parent's, for a fine-tuned cell)."""
        first = cell(parent, seed) if parent is not None else None
        if first is not None:
            cells.setdefault(first.run_id, first)
        made = cell(built, seed, first)
        if prekeys is not None:
            up = prekey.cell_prekey(parent.prekey, seed) if parent is not None else ""
            if parent is not None:
                prekeys[up] = prekey.entry_of(first)
            prekeys[prekey.cell_prekey(built.prekey, seed)] = prekey.entry_of(
                made, up, built.init_from if parent is not None else "")
        return made

    # a fine-tuning parent is also an ordinary combination: built once (wrapped, not decorated,
    # so that mutation testing still mutates `build`)
    build_once = functools.cache(build)
    cells: dict[str, Cell] = {}
    for task in matrix.tasks:
        for model in matrix.models:
            for objective in matrix.objectives:
                built = build_once(task, model, objective)
                # a cell skipped on its own needs no parent: only runnable children add theirs
                wants_parent = built.init_from and not built.skip_reason
                parent = build_once(task, model, built.init_from) if wants_parent else None
                if parent is not None and parent.init_from:
                    raise ConfigError(
                        f"cell (task={task}, model={model}, objective={objective}): its init_from "
                        f"objective {built.init_from!r} has init_from {parent.init_from!r} itself; "
                        "one level of fine-tuning is supported")
                for seed in matrix.seeds:
                    child = indexed(built, seed, parent)
                    cells.setdefault(child.run_id, child)
    return list(cells.values())


def combinations(parts: Sequence[Matrix]) -> Iterator[tuple[Matrix, str, str, str]]:
    """(part, task, model, objective) for every combination of every part, in matrix order."""
    for part in parts:
        for task in part.tasks:
            for model in part.models:
                for objective in part.objectives:
                    yield part, task, model, objective
