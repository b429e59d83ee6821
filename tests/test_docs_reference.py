"""Every `mtsg …` command, flag, configuration setting and metric the README and the docs name exists.

Commands, flags and settings get renamed; docs are read by the operator at 3 a.m. who types
what they say.  A synopsis (``[--limit N]``, ``add|revoke``) is checked too: its command path
and every ``--flag`` it names must be ones the CLI accepts.  A setting is checked in both of
its spellings: ``section.name`` and ``MTSG_SECTION_NAME``.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.main import TARGET_VARIABLE, build_parser
from gateway.config import ENV_PREFIX, Config, env_variable
from gateway.observability.metrics import Metrics

ROOT = Path(__file__).parents[1]
DOCUMENTS = sorted(
    [ROOT / "README.md", ROOT / "BENCHMARKS.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "deploy").rglob("*.md")]
)
# `mtsg` as a command word: at a line's start, after a shell operator or a path, or opening inline code.
_MENTION = re.compile(r"(?:^|`|[\s;&|(]|/)mtsg((?:\s+[^\s`#;&|>]+)*)")
_WORD = re.compile(r"[a-z][a-z0-9-]*")
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def _mentions() -> Iterator[tuple[str, str]]:
    for document in DOCUMENTS:
        in_code = False
        for number, line in enumerate(document.read_text().splitlines(), start=1):
            if line.startswith("```"):
                in_code = not in_code
                continue
            spans = [line] if in_code else re.findall(r"`([^`]*\bmtsg\b[^`]*)`", line)
            for span in spans:
                for match in _MENTION.finditer(span):
                    if match.group(1).strip():
                        yield f"{document.relative_to(ROOT)}:{number}", match.group(1)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def _problem(parser: argparse.ArgumentParser, words: str) -> str | None:
    """What is wrong with ``mtsg <words>``, or None.  ``a|b`` names alternatives, each checked."""
    path = ["mtsg"]
    for word in words.split():
        choices = _subcommands(parser)
        alternatives = word.split("|")
        if not choices or not all(_WORD.fullmatch(alternative) for alternative in alternatives):
            break
        missing = [alternative for alternative in alternatives if alternative not in choices]
        if missing:
            return f"{' '.join(path)} has no subcommand {', '.join(missing)} (it has {', '.join(sorted(choices))})"
        if len(alternatives) > 1:
            return None
        parser = choices[word]
        path.append(word)
    unknown = [flag for flag in _FLAG.findall(words) if flag not in _flags(parser)]
    if unknown:
        return f"{' '.join(path)} takes no {', '.join(unknown)}"
    return None


MENTIONS = list(_mentions())


def test_the_docs_show_many_commands() -> None:
    assert len(MENTIONS) >= 150


@pytest.mark.parametrize(("where", "words"), MENTIONS, ids=[where for where, _ in MENTIONS])
def test_a_documented_command_and_its_flags_exist(where: str, words: str) -> None:
    problem = _problem(build_parser(), words)
    assert problem is None, f"{where}: mtsg{words}: {problem}"


# Variables mtsg reads that are not settings: the CLI's bearer token and gateway address, the test suite's PostgreSQL.
_OTHER_VARIABLES = {"MTSG_TOKEN", TARGET_VARIABLE, "MTSG_TEST_POSTGRES_URL"}


def _settings() -> set[tuple[str, str]]:
    defaults = Config()
    return {
        (section.name, setting.name)
        for section in dataclasses.fields(defaults)
        for setting in dataclasses.fields(getattr(defaults, section.name))
    }


def _setting_mentions() -> Iterator[tuple[str, str]]:
    sections = {section for section, _ in _settings()}
    dotted = re.compile(rf"(?<![\w./-])(?:{'|'.join(sections)})\.[a-z_]+\b")
    variable = re.compile(rf"\b{ENV_PREFIX}[A-Z0-9_]+\b(?!\*)")
    for document in DOCUMENTS:
        for number, line in enumerate(document.read_text().splitlines(), start=1):
            for match in (*dotted.finditer(line), *variable.finditer(line)):
                yield f"{document.relative_to(ROOT)}:{number}", match.group(0)


SETTINGS = list(_setting_mentions())


def test_every_setting_the_docs_name_exists() -> None:
    settings = _settings()
    known = {f"{section}.{name}" for section, name in settings}
    known |= {env_variable(section, name) for section, name in settings} | _OTHER_VARIABLES
    assert len(SETTINGS) >= 100
    unknown = [f"{where}: {setting}" for where, setting in SETTINGS if setting not in known]
    assert unknown == []


# Names in the docs that look like metrics and are not: a database, a NOTIFY channel, a bundle's header key.
_NOT_METRICS = {"mtsg_bench", "mtsg_changes", "mtsg_bundle"}
_SERIES = {"counter": ("", "_total"), "gauge": ("",), "histogram": ("", "_bucket", "_sum", "_count")}


def test_every_metric_the_docs_and_alerts_name_exists() -> None:
    families = Metrics.create().registry.collect()
    exported = {family.name + suffix for family in families for suffix in _SERIES[family.type]}
    files = [*DOCUMENTS, *(path for path in (ROOT / "deploy").rglob("*.yaml"))]
    named = [
        (f"{path.relative_to(ROOT)}:{number}", match)
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        for match in re.findall(r"\bmtsg_[a-z0-9_]+", line)
    ]
    assert len(named) >= 60
    unknown = [f"{where}: {name}" for where, name in named if name not in exported | _NOT_METRICS]
    assert unknown == []
