"""docs/CONFIGURATION.md is what `mtsg config reference` prints, and names every setting there is."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.cli.config_reference import UndocumentedSettingError, field_comments, render_reference
from gateway.config import Config, env_variable
from tests.helpers import run_mtsg

DOCUMENT = Path(__file__).parents[1] / "docs" / "CONFIGURATION.md"


def test_the_document_is_the_commands_output() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == render_reference(), (
        "docs/CONFIGURATION.md is stale: run `mtsg config reference > docs/CONFIGURATION.md`"
    )


def test_every_setting_has_a_row_with_its_variable() -> None:
    text = DOCUMENT.read_text(encoding="utf-8")
    for section in dataclasses.fields(Config):
        for item in dataclasses.fields(getattr(Config(), section.name)):
            assert f"| `{section.name}.{item.name}`<br>`{env_variable(section.name, item.name)}` |" in text


@dataclass(frozen=True)
class _Section:
    # Said.
    said: int = 1
    silent: str = ""


def test_a_setting_without_words_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert field_comments(_Section) == {"said": "Said."}

    @dataclass(frozen=True)
    class Bigger(Config):
        extra: _Section = dataclasses.field(default_factory=_Section)

    monkeypatch.setattr("gateway.cli.config_reference.Config", Bigger)
    with pytest.raises(UndocumentedSettingError, match=r"extra\.silent has no comment"):
        render_reference()


def test_the_command_prints_the_reference(tmp_path: Path) -> None:
    printed = run_mtsg("config", "reference", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == render_reference()
