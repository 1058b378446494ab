"""Running the rules: find files, parse, check, apply settings and comments."""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from stateshift.analyze._config import AnalyzeConfig
from stateshift.analyze._context import ModuleContext
from stateshift.analyze._model import PARSE_ERROR, Finding, RuleInfo
from stateshift.analyze._suppress import is_suppressed, suppressions
from stateshift.analyze.rules import ALL_RULES, Rule

logger = logging.getLogger(__name__)

_SKIPPED_DIRECTORIES = {
    "__pycache__",
    "node_modules",
    "site-packages",
    "venv",
    "build",
    "dist",
}


@dataclass(frozen=True)
class Report:
    """The outcome of one run."""

    findings: tuple[Finding, ...]
    """Every finding not silenced, sorted by file and position."""
    files_checked: int
    """How many Python files were read."""
    config: AnalyzeConfig

    @property
    def failed(self) -> bool:
        """True when a finding is at or above the ``fail-on`` threshold."""
        return any(self.config.fails(f.severity) for f in self.findings)


def all_rules() -> tuple[RuleInfo, ...]:
    """The description of every rule, the parse error first."""
    return (PARSE_ERROR, *(rule.info for rule in ALL_RULES))


def analyze_paths(paths: Sequence[Path], config: AnalyzeConfig) -> Report:
    """Check every Python file under ``paths``.

    Raises:
        FileNotFoundError: when one of ``paths`` does not exist.
    """
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(path)
    rules = [rule() for rule in ALL_RULES if config.enabled(rule.info.rule_id)]
    findings: list[Finding] = []
    count = 0
    for file in iter_python_files(paths, config):
        count += 1
        findings.extend(_check_file(file, rules, config))
    findings.sort(key=Finding.sort_key)
    return Report(findings=tuple(findings), files_checked=count, config=config)


def analyze_source(
    source: str, path: str = "<string>", config: AnalyzeConfig | None = None
) -> list[Finding]:
    """Check one module's source text (handy in tests and editors)."""
    config = config or AnalyzeConfig()
    rules = [rule() for rule in ALL_RULES if config.enabled(rule.info.rule_id)]
    return sorted(_check_source(source, path, rules, config), key=Finding.sort_key)


def iter_python_files(paths: Iterable[Path], config: AnalyzeConfig) -> Iterator[Path]:
    """Python files under ``paths``, sorted, without excluded ones.

    A file named explicitly is always checked; directories skip hidden
    folders, virtual environments and build output.
    """
    for path in paths:
        if path.is_file():
            yield path
            continue
        found: list[Path] = []
        for directory, subdirs, files in os.walk(path):
            subdirs[:] = sorted(
                d
                for d in subdirs
                if not d.startswith(".") and d not in _SKIPPED_DIRECTORIES
            )
            found.extend(Path(directory, f) for f in files if f.endswith(".py"))
        yield from (f for f in sorted(found) if not _excluded(f, config))


def _excluded(path: Path, config: AnalyzeConfig) -> bool:
    if not config.exclude:
        return False
    absolute = path.resolve()
    candidates = [display_path(path), path.as_posix()]
    if config.root is not None and absolute.is_relative_to(config.root):
        candidates.append(absolute.relative_to(config.root).as_posix())
    return any(
        fnmatch.fnmatch(candidate, pattern)
        for candidate in candidates
        for pattern in config.exclude
    )


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when inside it."""
    absolute = path.resolve()
    cwd = Path.cwd().resolve()
    if absolute.is_relative_to(cwd):
        return absolute.relative_to(cwd).as_posix()
    return path.as_posix()


def _check_file(path: Path, rules: list[Rule], config: AnalyzeConfig) -> list[Finding]:
    shown = display_path(path)
    try:
        source = importlib.util.decode_source(path.read_bytes())
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        return _parse_error(shown, 1, 1, f"cannot read the file: {exc}", config)
    return _check_source(source, shown, rules, config)


def _check_source(
    source: str, path: str, rules: list[Rule], config: AnalyzeConfig
) -> list[Finding]:
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        return _parse_error(
            path, exc.lineno or 1, exc.offset or 1, f"syntax error: {exc.msg}", config
        )
    except ValueError as exc:  # null bytes in the source
        return _parse_error(path, 1, 1, f"cannot parse: {exc}", config)

    ctx = ModuleContext(path=path, source=source, tree=tree, options=config.options)
    lines = source.splitlines()
    silenced = suppressions(source)
    findings: list[Finding] = []
    for rule in rules:
        for hit in rule.check(ctx):
            finding = _finding(rule.info, hit.node, hit.message, path, lines, config)
            if not is_suppressed(silenced, rule.info.rule_id, _comment_lines(hit.node)):
                findings.append(finding)
    return _unique(findings)


def _parse_error(
    path: str, line: int, column: int, message: str, config: AnalyzeConfig
) -> list[Finding]:
    if not config.enabled(PARSE_ERROR.rule_id):
        return []
    logger.debug("cannot parse %s: %s", path, message)
    return [
        Finding(
            rule=PARSE_ERROR,
            severity=config.severity_of(PARSE_ERROR),
            path=path,
            line=line,
            column=max(column, 1),
            end_line=line,
            end_column=max(column, 1),
            message=message,
        )
    ]


def _finding(
    rule: RuleInfo,
    node: ast.AST,
    message: str,
    path: str,
    lines: list[str],
    config: AnalyzeConfig,
) -> Finding:
    line = getattr(node, "lineno", 1)
    end_line = getattr(node, "end_lineno", None) or line
    column = _characters(lines, line, getattr(node, "col_offset", 0))
    end_column = _characters(lines, end_line, getattr(node, "end_col_offset", 0) or 0)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.While)):
        # Point at the header only, not the whole body.
        end_line, end_column = line, len(_line(lines, line)) + 1
    return Finding(
        rule=rule,
        severity=config.severity_of(rule),
        path=path,
        line=line,
        column=column,
        end_line=end_line,
        end_column=max(end_column, column),
        message=message,
    )


def _line(lines: list[str], number: int) -> str:
    return lines[number - 1] if 0 < number <= len(lines) else ""


def _characters(lines: list[str], number: int, byte_offset: int) -> int:
    """1-based character column from the AST's 0-based UTF-8 byte offset."""
    encoded = _line(lines, number).encode("utf-8")
    return len(encoded[:byte_offset].decode("utf-8", errors="replace")) + 1


def _comment_lines(node: ast.AST) -> range:
    """Lines where a suppression comment applies to a finding at ``node``."""
    line = getattr(node, "lineno", 1)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        first = min([d.lineno for d in node.decorator_list] + [line])
        return range(first, line + 1)
    if isinstance(node, (ast.While, ast.For, ast.If, ast.With, ast.Try)):
        return range(line, line + 1)
    end = getattr(node, "end_lineno", None) or line
    return range(line, end + 1)


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, int, int]] = set()
    result: list[Finding] = []
    for finding in findings:
        key = (finding.rule_id, finding.line, finding.column)
        if key not in seen:
            seen.add(key)
            result.append(finding)
    return result
