"""``mtsg config reference``: every setting, its default, its variable and what it does, from the schema.

The words come from the comment above each field in ``gateway.config``, so the reference is
written once, beside the code that reads the setting; docs/CONFIGURATION.md is this command's
output and a test keeps the two equal.
"""

from __future__ import annotations

import dataclasses
import inspect
import re

from gateway.config import Config, env_variable, toml_value

_FIELD = re.compile(r"^    (\w+): [\w.\[\] |]+ = ")
_INTRO = """\
# Configuration

Defaults are built in; a TOML file (`--config FILE`), then `MTSG_<SECTION>_<KEY>` environment
variables, then flags override them. Unknown keys, wrong types and numbers out of range (nan,
inf) are refused with the key named. An `MTSG_<SECTION>_…` variable that names no key (a typo:
`FAILMODE` for `FAIL_MODE`, say) is not refused, since orchestrators set variables of their own
under the prefix, but `mtsg serve` logs a warning naming it and the key it probably meant.
`mtsg config show [--config FILE]` prints the effective configuration and where each value came
from. Flags: `--listen`, `--metrics-listen` and `--data-dir` set `server.listen`,
`server.metrics_listen` and `store.data_dir`; `mtsg serve --workers N` and `--insecure` set
`server.workers` and `auth.insecure`.

The operators' commands (`mtsg commands`, `valve`, `blocklist`, `policy`, `verdicts`, `audit`,
`purge`, `privacy`) work on the installation that `--config` or `--data-dir` names. Run where
there is no store, they say so and exit 2 rather than make an empty one; only `blocklist
add|import` and `policy apply`, which seed a new installation, create it.

Example `mtsg.toml`:

```toml
[server]
listen = "0.0.0.0:50051"
metrics_listen = "0.0.0.0:9464"

[store]
data_dir = "/var/lib/mtsg"

[signals]
phone_change_window_hours = 72
```

This page is the output of `mtsg config reference`; the words are the comments on each setting
in `gateway/config.py`.
"""


class UndocumentedSettingError(ValueError):
    """A setting without the comment that says what it does."""


def field_comments(section_type: type) -> dict[str, str]:
    """Each field's comment block (the ``#`` lines right above it), joined into one paragraph."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(section_type).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = _FIELD.match(line)
        if match and pending:
            comments[match.group(1)] = " ".join(" ".join(pending).split())
        pending = []
    return comments


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_reference() -> str:
    """docs/CONFIGURATION.md: an introduction, then one table per section."""
    defaults = Config()
    lines = [_INTRO]
    for section in dataclasses.fields(Config):
        section_value = getattr(defaults, section.name)
        section_type = type(section_value)
        comments = field_comments(section_type)
        lines.append(f"## [{section.name}]\n")
        summary = inspect.getdoc(section_type)
        if summary and not summary.startswith(section_type.__name__ + "("):
            lines.append(summary + "\n")
        lines.append("| setting | default | meaning |")
        lines.append("| --- | --- | --- |")
        for item in dataclasses.fields(section_type):
            meaning = comments.get(item.name)
            if not meaning:
                raise UndocumentedSettingError(
                    f"{section.name}.{item.name} has no comment in gateway/config.py saying what it does"
                )
            name = f"`{section.name}.{item.name}`<br>`{env_variable(section.name, item.name)}`"
            default = f"`{toml_value(getattr(section_value, item.name))}`"
            lines.append(f"| {name} | {_cell(default)} | {_cell(meaning)} |")
        lines.append("")
    return "\n".join(lines)
