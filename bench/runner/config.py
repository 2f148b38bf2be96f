"""Gin plumbing: where config files live, how a cell's config text is built, and validation.

gin-config 0.5.0 is process-global state with a few sharp edges on modern Python: registrations
are permanent (re-importing a configurable module raises), `include` resolves against the CWD or
registered search paths rather than the including file, a file that is not found can surface as
`AttributeError: module 'importlib' has no attribute 'util'` with `Path not found` log noise, an
unclosed bracket raises `tokenize.TokenError` rather than `SyntaxError`, and parsing finalizes (locks)
the config by default. Everything the suite does with gin goes through this module:

* `GIN_ROOT` is the `gin/` folder; `include` lines resolve against it (never against the CWD).
* `resolve(axis, name)` turns `dlc` or `gin/objectives/dlc.gin` into a path.
* `expand(paths)` inlines every `include` so a worker receives one self-contained text.
* `with parsed(paths, bindings):` parses in a clean gin state and turns every gin failure (unknown
  configurable, misspelt parameter, missing include, syntax error, wrong value type, a file that
  is not UTF-8, an `import` of a missing module, an undefined macro) into one `ConfigError` that
  names the file and line; the body builds objects from the config, and gin is cleared when it
  ends, whatever happens. `validate(paths, bindings)` is the same with an empty body;
  `with parsed_text(text):` is the worker's side (a text the driver validated). Gin is read only
  inside these blocks: by the driver (`bench.runner.matrix`, `bench.protocol.sweep`) and by `bench.runner.run.run_cell`.

A gin file is code: an `import` line runs that module, also under `--dry-run`. Run only configs
you trust.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import re
import tokenize
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import gin
from gin import config as gin_config

GIN_ROOT = Path(__file__).resolve().parents[2] / "gin"
AXES = ("tasks", "models", "objectives", "scales", "matrices", "sweeps")
_INCLUDE = re.compile(r"""^\s*include\s+['"](?P<path>[^'"]+)['"]\s*$""")


class ConfigError(ValueError):
    """A config that cannot run, with the file and line to fix."""


class _QuietIncludeSearch(logging.Filter):
    """gin logs 'Path not found' at ERROR for every search prefix it tries before the one that
    matches; real misses are reported by `expand` with file and line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Path not found")


def setup_gin(registry: bool = True) -> None:
    """Import every configurable module once (`registry`; False: only those already imported, e.g.
    a matrix file's, without torch) and point `include` at `GIN_ROOT` (idempotent)."""
    import importlib.util  # noqa: F401  (gin 0.5.0's resource reader uses it without importing it)

    if registry:
        import bench.runner.registry  # noqa: F401  (registers tasks, models, objectives, metrics, torch)

    if str(GIN_ROOT) not in gin_config._LOCATION_PREFIXES:
        gin.add_config_file_search_path(str(GIN_ROOT))
        logging.getLogger().addFilter(_QuietIncludeSearch())


def resolve(axis: str, name: str | Path) -> Path:
    """Path of a gin file given as a path, a path relative to `gin/`, or a bare name on an axis.

    `resolve("objectives", "dlc")` -> `gin/objectives/dlc.gin`.
    """
    text = str(name)
    candidates = [Path(text), GIN_ROOT / text, GIN_ROOT / axis / text]
    if not text.endswith(".gin"):
        candidates += [GIN_ROOT / axis / f"{text}.gin", Path(f"{text}.gin")]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    known = sorted(p.stem for p in (GIN_ROOT / axis).glob("*.gin")) if axis in AXES else []
    hint = difflib.get_close_matches(Path(text).stem, known, n=1)
    raise ConfigError(
        f"no gin file {text!r} on axis {axis!r}: looked for "
        + ", ".join(str(c) for c in candidates)
        + (f"; did you mean {hint[0]!r}?" if hint else f"; known: {', '.join(known) or 'none'}")
    )


def _include_target(ref: str, where: str) -> Path:
    for path in (GIN_ROOT / ref, Path(ref)):
        if path.is_file():
            return path.resolve()
    raise ConfigError(f"{where}: include {ref!r} not found (includes resolve against {GIN_ROOT})")


def read_gin(path: Path) -> str:
    """The text of a gin file; `ConfigError` naming the file and line when it is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 text (byte 0x{data[err.start]:02x}); "
                          "save the file as UTF-8") from None


def _lines(path: Path) -> Iterator[tuple[str, Path | None]]:
    """Each line of a gin file with, for an `include` line, the file it names (else None)."""
    for num, line in enumerate(read_gin(path).splitlines(), start=1):
        match = _INCLUDE.match(line)
        yield line, _include_target(match["path"], f"{path}, line {num}") if match else None


def expand(paths: Sequence[Path], _stack: tuple[Path, ...] = ()) -> str:
    """One gin text holding `paths` in order with every `include` inlined (recursively).

    Each file's text is preceded by a `# --- file: ...` comment so the saved config reads like the
    list of files that made it.
    """
    chunks = []
    for path in paths:
        path = Path(path).resolve()
        if path in _stack:
            raise ConfigError(f"{path}: include cycle through {' -> '.join(map(str, _stack))}")
        lines = [line if target is None else expand([target], _stack + (path,))
                 for line, target in _lines(path)]
        chunks.append(f"# --- file: {_display(path)}\n" + "\n".join(lines))
    return "\n".join(chunks) + "\n"


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(GIN_ROOT.parent))
    except ValueError:
        return str(path)


@contextmanager
def parsed_text(text: str) -> Iterator[None]:
    """Gin parsed from `text` (the worker side; the driver validated it) for the block, cleared
    when the block ends."""
    setup_gin()
    gin.clear_config()
    try:
        gin.parse_config(text)
        gin.finalize()
        yield
    finally:
        gin.clear_config()


@contextmanager
def parsed(paths: Sequence[Path], bindings: Sequence[str] = (),
           registry: bool = True) -> Iterator[None]:
    """Gin parsed from `paths` + `bindings` in a clean state, checked and locked, for the block
    (build objects from it there); cleared when the block ends. Raises `ConfigError` naming file
    and line for a config that does not parse (`registry=False`: see `setup_gin`)."""
    setup_gin(registry)
    gin.clear_config()
    try:
        _parse(paths, bindings)
        yield
    finally:
        gin.clear_config()


def validate(paths: Sequence[Path], bindings: Sequence[str] = ()) -> None:
    """Raise `ConfigError` (file and line) unless `paths` + `bindings` parse; leaves gin clear."""
    with parsed(paths, bindings):
        pass


_GIN_LOCATION = re.compile(r'In (?:file|bindings string) "?(?P<file>[^",]*)"?, line (?P<line>\d+)')
_MACRO = re.compile(r"No bindings specified for '(?:(?P<name>[^/']+)/)?gin\.macro'")


def _parse(paths: Sequence[Path], bindings: Sequence[str]) -> None:
    expand(paths)  # checks every include (and that every file is UTF-8) up front, file and line
    try:
        gin.parse_config_files_and_bindings(
            [str(p) for p in paths], list(bindings), finalize_config=False
        )
    except tokenize.TokenError as err:  # gin 0.5.0 gives no file for an unclosed bracket
        raise ConfigError(_locate_token_error(paths, bindings, err)) from None
    except SyntaxError as err:
        if err.filename is None:  # gin names no file for a binding given as a string
            raise ConfigError(_locate_binding_error(bindings, err)) from None
        raise ConfigError(f"{err.filename}, line {err.lineno}: syntax error: {err.msg}") from None
    except ImportError as err:  # `import x` of a module that is not there (or fails to import)
        where = _GIN_LOCATION.search(str(err))
        place = f"{where['file']}, line {where['line']}" if where else "config"
        raise ConfigError(f"{place}: import failed: {type(err).__name__}: "
                          f"{str(err).splitlines()[0]}") from None
    except (ValueError, KeyError, AttributeError, TypeError) as err:
        raise ConfigError(_with_suggestion(str(err).strip("'\""))) from None
    check_types(paths, bindings)
    try:
        gin.finalize()
    except ValueError as err:  # gin checks references and macros here, and prints the config
        macro = _MACRO.search(str(err))
        if macro is None:
            raise ConfigError(str(err).splitlines()[0]) from None
        name = macro["name"]
        uses = _find_lines(paths, bindings, re.compile(rf"%{re.escape(name)}\b"))
        raise ConfigError(f"{uses[0] if uses else 'config'}: macro %{name} is used but never "
                          f"defined (add `{name} = ...`)") from None


def _locate_token_error(paths: Sequence[Path], bindings: Sequence[str], err: Exception) -> str:
    sources = [(str(p), read_gin(p)) for p in paths]
    sources += [(f"--gin_bindings {b!r}", b) for b in bindings]
    for name, text in sources:
        try:
            list(tokenize.generate_tokens(iter(text.splitlines(keepends=True)).__next__))
        except tokenize.TokenError as bad:
            line = bad.args[1][0] if len(bad.args) > 1 else "?"
            return f"{name}, line {line}: {bad.args[0]} (an unclosed bracket or string?)"
    return f"syntax error: {err}"


def _locate_binding_error(bindings: Sequence[str], err: SyntaxError) -> str:
    """'--gin_bindings B: syntax error: ...' for the first binding that does not parse alone."""
    for binding in bindings:
        try:
            for _ in gin_config.config_parser.ConfigParser(
                    binding, gin_config.ParserDelegate(skip_unknown=True)):
                pass
        except (SyntaxError, tokenize.TokenError) as bad:
            return f"--gin_bindings {binding!r}: syntax error: {getattr(bad, 'msg', bad)}"
    return f"a binding, line {err.lineno}: syntax error: {err.msg}"


_MISSING_PARAM = re.compile(r"Configurable '(?P<sel>[^']+)' doesn't have a parameter named '(?P<p>[^']+)'")


def _with_suggestion(message: str) -> str:
    """Add a 'did you mean' to gin's unknown-parameter / unknown-configurable messages."""
    match = _MISSING_PARAM.search(message)
    if match:
        try:
            configurable = gin_config._REGISTRY.get_match(match["sel"])
            names = list(inspect.signature(configurable.wrapped).parameters)
        except Exception:  # noqa: BLE001 - a suggestion is best effort
            names = []
        close = difflib.get_close_matches(match["p"], names, n=1)
        if close:
            message += f"\n  did you mean {match['sel']}.{close[0]}?"
        elif names:
            message += f"\n  its parameters are: {', '.join(names)}"
    return message


def check_types(paths: Sequence[Path], bindings: Sequence[str]) -> None:
    """Check each literal binding against the annotation of its parameter.

    gin itself never checks types, so `Experiment.epochs = 'ten'` would only fail deep inside a
    worker. References (`@x`) and macros (`%X`) are skipped: their values exist only at call time.
    """
    for (_scope, selector), params in gin_config._CONFIG.items():
        configurable = gin_config._REGISTRY.get_match(selector)
        if configurable is None:
            continue
        try:
            hints = typing.get_type_hints(
                configurable.wrapped.__init__
                if inspect.isclass(configurable.wrapped)
                else configurable.wrapped
            )
        except Exception:  # noqa: BLE001 - unresolvable annotations: nothing to check
            continue
        for name, value in params.items():
            if name not in hints or not _is_literal(value):
                continue
            if not _matches(value, hints[name]):
                where = where_bound(paths, bindings, selector, name)
                raise ConfigError(
                    f"{where}: {selector}.{name} = {value!r}: expected {_type_name(hints[name])}, "
                    f"got {type(value).__name__}"
                )


def _is_literal(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(_is_literal(v) for v in value.values())
    return value is None or isinstance(value, (bool, int, float, str))


def _matches(value: object, hint: object) -> bool:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is typing.Any or hint is object:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    if origin in (list, tuple, Sequence, Iterable, typing.Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        inner = args[0] if args and (origin is not tuple or len(args) == 2) else None
        return inner is None or inner is Ellipsis or all(_matches(v, inner) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # forward refs, protocols, callables: not checkable here


def _type_name(hint: object) -> str:
    """`int`, `Sequence[int]`, `float | None`: the annotation as written."""
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("collections.abc.", "")



def where_bound(paths: Sequence[Path], bindings: Sequence[str], selector: str, name: str) -> str:
    """'file, line N' (or '--gin_bindings B') of the last binding of `selector.name` (the one gin
    applies); 'config' when it is bound nowhere (a default)."""
    short = selector.rsplit(".", 1)[-1]
    pattern = re.compile(rf"^\s*(?:[\w./]*/)?(?:[\w.]*\.)?{re.escape(short)}\.{re.escape(name)}\s*=")
    found = _find_lines(paths, bindings, pattern, match=True)
    return found[-1] if found else "config"


def _find_lines(paths: Sequence[Path], bindings: Sequence[str], pattern: re.Pattern,
                match: bool = False) -> list[str]:
    """'file, line N' / '--gin_bindings B' of every line of `paths` (includes first, gin's order)
    and `bindings` that `pattern` matches at its start (`match`) or anywhere."""
    test = pattern.match if match else pattern.search
    found = [f"{path}, line {num}" for path in _all_files(paths)
             for num, line in enumerate(read_gin(path).splitlines(), start=1) if test(line)]
    return found + [f"--gin_bindings {b!r}" for b in bindings if test(b)]


def _all_files(paths: Sequence[Path]) -> list[Path]:
    """`paths` and every file they include, each after the files it includes (gin's order)."""
    out: list[Path] = []
    for path in paths:
        path = Path(path).resolve()
        for _line, target in _lines(path):
            if target is not None:
                out += _all_files([target])
        out.append(path)
    return out
