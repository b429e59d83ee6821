"""The policy document (TOML): parsing it into a Policy and listing everything wrong with it.

Security teams write this file by hand and apply it to a gateway that decides
whether money can move, so validation reports every problem at once, each with
where it is ("scenarios[2].when.all[1].code") and what to do, and refuses
conditions that could never hold: a scenario that silently never fires is worse
than an error.  The grammar is documented in docs/POLICY.md.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from signals.catalog import CATEGORIES, FINDING_KINDS, SEVERITY_NAMES
from signals.conditions import AllOf, AnyOf, Condition, Not, Select
from signals.detector_settings import DetectorSettings
from signals.findings import Severity
from signals.kinds import FindingKind
from signals.policy import Action, FreezeScope, Mode, Policy, Scenario, StepUpMethod

MAX_SCENARIOS = 500
MAX_DEPTH = 8
_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_TOP_KEYS = {"name", "description", "detectors", "scenarios"}
_SCENARIO_KEYS = {
    "id",
    "description",
    "when",
    "action",
    "step_up_method",
    "freeze_scopes",
    "score",
    "mode",
    "joiner",
}
_LEAF_KEYS = {"code", "category", "except_code", "min_severity", "min_count", "at_least", "at_most"}
_COMBINERS = {"all", "any", "not"}


@dataclass(frozen=True, slots=True)
class Problem:
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class PolicyError(ValueError):
    """The document is not a valid policy; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems = problems


def _names(values: Any) -> str:
    return ", ".join(sorted(str(value) for value in values))


class _Reader:
    """Collects problems while building; every method returns a usable value even after a problem."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, location: str, message: str) -> None:
        self.problems.append(Problem(location, message))

    def unknown_keys(self, table: dict[str, Any], allowed: set[str], where: str) -> None:
        for key in sorted(set(table) - allowed):
            self.problem(f"{where}.{key}" if where else key, f"unknown key; expected one of {_names(allowed)}")

    def text(self, table: dict[str, Any], key: str, where: str, *, required: bool, default: str = "") -> str:
        location = f"{where}.{key}" if where else key
        value = table.get(key)
        if value is None:
            if required:
                self.problem(location, "is required")
            return default
        if not isinstance(value, str) or (required and not value.strip()):
            self.problem(location, f"must be a non-empty string, got {value!r}")
            return default
        return value

    def enum(self, table: dict[str, Any], key: str, where: str, choices: dict[str, Any], default: Any) -> Any:
        value = table.get(key)
        if value is None:
            return default
        if not isinstance(value, str) or value.lower() not in choices:
            self.problem(f"{where}.{key}", f"must be one of {_names(choices)}, got {value!r}")
            return default
        return choices[value.lower()]

    def number(self, value: Any, where: str, low: float, high: float, *, integer: bool = False) -> float | None:
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            self.problem(where, f"must be {'an integer' if integer else 'a number'}, got {value!r}")
            return None
        if not math.isfinite(value):  # TOML has nan and inf; a bound of inf says nothing, nan never compares
            self.problem(where, f"must be a finite number, got {value!r}")
            return None
        if not low <= value <= high:
            self.problem(where, f"must be from {low:g} to {high:g}, got {value!r}")
            return None
        return value

    # -- detectors ---------------------------------------------------------

    def detectors(self, table: Any) -> DetectorSettings:
        defaults = DetectorSettings()
        if table is None:
            return defaults
        if not isinstance(table, dict):
            self.problem("detectors", "must be a table")
            return defaults
        fields = {field.name: field for field in dataclasses.fields(DetectorSettings)}
        self.unknown_keys(table, set(fields), "detectors")
        values: dict[str, Any] = {}
        for name in fields:
            if name not in table:
                continue
            integer = isinstance(getattr(defaults, name), int)
            low = 1 if integer else 0.001
            number = self.number(table[name], f"detectors.{name}", low, 1e7, integer=integer)
            if number is not None:
                values[name] = number
        return dataclasses.replace(defaults, **values)

    # -- conditions --------------------------------------------------------

    def condition(self, node: Any, where: str, depth: int = 0) -> Condition | None:
        if not isinstance(node, dict):
            self.problem(where, "must be a table: a finding selector (code/category) or one of all, any, not")
            return None
        if depth > MAX_DEPTH:
            self.problem(where, f"conditions nest at most {MAX_DEPTH} deep")
            return None
        combiners = _COMBINERS & set(node)
        if len(combiners) > 1 or (combiners and set(node) - combiners):
            self.problem(where, "a condition is either one of all / any / not, or a finding selector; not both")
            return None
        if "not" in node:
            child = self.condition(node["not"], f"{where}.not", depth + 1)
            return Not(child) if child is not None else None
        for name, build in (("all", AllOf), ("any", AnyOf)):
            if name in node:
                children = node[name]
                if not isinstance(children, list) or not children:
                    self.problem(f"{where}.{name}", "must be a non-empty list of conditions")
                    return None
                built = [self.condition(child, f"{where}.{name}[{i}]", depth + 1) for i, child in enumerate(children)]
                if any(child is None for child in built):
                    return None
                return build(tuple(child for child in built if child is not None))
        return self.select(node, where)

    def _codes(self, value: Any, where: str) -> frozenset[str] | None:
        patterns = [value] if isinstance(value, str) else value
        if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) for p in patterns):
            self.problem(where, "must be a finding code or a non-empty list of codes (a trailing * matches a prefix)")
            return None
        codes: set[str] = set()
        for pattern in patterns:
            matched = fnmatch.filter(FINDING_KINDS, pattern) if "*" in pattern else [pattern]
            if not matched or matched[0] not in FINDING_KINDS:
                self.problem(where, f"unknown finding code {pattern!r}; see `mtsg policy codes`")
                return None
            codes.update(matched)
        return frozenset(codes)

    def _categories(self, value: Any, where: str) -> frozenset[str] | None:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
            self.problem(where, "must be a category or a non-empty list of categories")
            return None
        unknown = [name for name in names if name not in CATEGORIES]
        if unknown:
            self.problem(where, f"unknown category {unknown[0]!r}; expected one of {_names(CATEGORIES)}")
            return None
        return frozenset(names)

    def _thresholds(self, value: Any, where: str, kinds: list[FindingKind]) -> tuple[tuple[str, float], ...] | None:
        if not isinstance(value, dict) or not value:
            self.problem(where, "must be a table of measure = number, e.g. { distance_km = 500 }")
            return None
        limits: list[tuple[str, float]] = []
        for name, raw in value.items():
            lacking = [kind.code for kind in kinds if name not in kind.measures]
            if lacking:
                self.problem(f"{where}.{name}", f"is not a measure of {', '.join(sorted(lacking))}")
                continue
            number = self.number(raw, f"{where}.{name}", float("-inf"), float("inf"))
            if number is not None:
                limits.append((name, float(number)))
        return tuple(limits) if len(limits) == len(value) else None

    def select(self, node: dict[str, Any], where: str) -> Select | None:
        self.unknown_keys(node, _LEAF_KEYS, where)
        if not {"code", "category", "except_code"} & set(node):
            self.problem(where, "a finding selector needs code, category or except_code")
            return None
        codes = self._codes(node["code"], f"{where}.code") if "code" in node else frozenset()
        categories = self._categories(node["category"], f"{where}.category") if "category" in node else frozenset()
        excluded = self._codes(node["except_code"], f"{where}.except_code") if "except_code" in node else frozenset()
        if codes is None or categories is None or excluded is None:
            return None
        kinds = [
            kind
            for kind in FINDING_KINDS.values()
            if (not codes or kind.code in codes)
            and (not categories or kind.category in categories)
            and kind.code not in excluded
        ]
        if not kinds:
            self.problem(where, f"no finding has code {_names(codes)} in category {_names(categories)}")
            return None
        min_severity = self.enum(node, "min_severity", where, dict(SEVERITY_NAMES), Severity.INFO)
        min_count_raw = node.get("min_count", 1)
        min_count = self.number(min_count_raw, f"{where}.min_count", 1, 10_000, integer=True)
        at_least = self._thresholds(node["at_least"], f"{where}.at_least", kinds) if "at_least" in node else ()
        at_most = self._thresholds(node["at_most"], f"{where}.at_most", kinds) if "at_most" in node else ()
        selector = Select(codes, categories, excluded, min_severity, int(min_count or 1), at_least or (), at_most or ())
        self._reachable(selector, kinds, where)  # on the valid parts too, so every problem is listed at once
        if min_count is None or at_least is None or at_most is None:
            return None
        return selector

    def _reachable(self, selector: Select, kinds: list[FindingKind], where: str) -> None:
        """Refuse thresholds no finding can meet: they would make the scenario silently dead."""
        strongest = max(kind.strongest for kind in kinds)
        if selector.min_severity > strongest:
            self.problem(
                f"{where}.min_severity",
                f"unreachable: these findings are never stronger than {strongest.name.lower()}",
            )
        if selector.min_count > 1 and not any(kind.per_app for kind in kinds) and selector.min_count > len(kinds):
            self.problem(
                f"{where}.min_count",
                f"unreachable: at most {len(kinds)} of these findings can occur in one login",
            )
        lows = dict(selector.at_least)
        highs = dict(selector.at_most)
        for name, low in lows.items():
            ceiling = max(kind.measures[name].high for kind in kinds)
            if low > ceiling:
                self.problem(f"{where}.at_least.{name}", f"unreachable: {name} never exceeds {ceiling:g}")
            if name in highs and highs[name] < low:
                self.problem(f"{where}.at_most.{name}", f"unreachable: below at_least.{name} = {low:g}")
        for name, high in highs.items():
            floor = min(kind.measures[name].low for kind in kinds)
            if high < floor:
                self.problem(f"{where}.at_most.{name}", f"unreachable: {name} is never below {floor:g}")

    # -- scenarios ---------------------------------------------------------

    def scenario(self, table: Any, where: str) -> Scenario | None:
        if not isinstance(table, dict):
            self.problem(where, "must be a table ([[scenarios]])")
            return None
        self.unknown_keys(table, _SCENARIO_KEYS, where)
        scenario_id = self.text(table, "id", where, required=True)
        if scenario_id and not _ID.fullmatch(scenario_id):
            self.problem(f"{where}.id", "must be 1-64 of a-z, 0-9, '-', '_', '.' starting with a letter or digit")
        description = self.text(table, "description", where, required=True)
        actions = {action.name.lower(): action for action in Action}
        if "action" not in table:
            self.problem(f"{where}.action", f"is required: one of {_names(actions)}")
        action = self.enum(table, "action", where, actions, Action.ALLOW)
        methods = {method.name.lower(): method for method in StepUpMethod if method is not StepUpMethod.NONE}
        method = self.enum(table, "step_up_method", where, methods, StepUpMethod.NONE)
        if action is Action.STEP_UP and method is StepUpMethod.NONE and "step_up_method" not in table:
            self.problem(f"{where}.step_up_method", f"is required for step_up: one of {_names(methods)}")
        if action is not Action.STEP_UP and "step_up_method" in table:
            self.problem(f"{where}.step_up_method", "only a step_up scenario has a step-up method")
        scopes = self._scopes(table, where, action)
        score = self.number(table.get("score", 0), f"{where}.score", 0, 100, integer=True)
        mode = self.enum(table, "mode", where, {mode.value: mode for mode in Mode}, Mode.ACTIVE)
        joiner = self.text(table, "joiner", where, required=False, default=" while ")
        if "when" not in table:
            self.problem(f"{where}.when", "is required: the condition over findings")
            return None
        condition = self.condition(table["when"], f"{where}.when")
        if condition is None or score is None:
            return None
        return Scenario(
            id=scenario_id,
            description=description,
            when=condition,
            action=action,
            step_up_method=method,
            freeze_scopes=scopes,
            score=int(score),
            mode=mode,
            joiner=joiner,
        )

    def _scopes(self, table: dict[str, Any], where: str, action: Action) -> tuple[FreezeScope, ...]:
        raw = table.get("freeze_scopes")
        if action is not Action.FREEZE:
            if raw is not None:
                self.problem(f"{where}.freeze_scopes", "only a freeze scenario has freeze scopes")
            return ()
        choices = {scope.value: scope for scope in FreezeScope}
        if not isinstance(raw, list) or not raw:
            self.problem(f"{where}.freeze_scopes", f"is required for freeze: a non-empty list of {_names(choices)}")
            return ()
        scopes: list[FreezeScope] = []
        for index, name in enumerate(raw):
            if not isinstance(name, str) or name.lower() not in choices:
                self.problem(f"{where}.freeze_scopes[{index}]", f"must be one of {_names(choices)}, got {name!r}")
            elif choices[name.lower()] not in scopes:
                scopes.append(choices[name.lower()])
        return tuple(scopes)


def read_policy(document: str, version: str) -> Policy:
    """Parse and validate ``document``; raise PolicyError listing every problem."""
    reader = _Reader()
    try:
        table = tomllib.loads(document)
    except tomllib.TOMLDecodeError as error:
        raise PolicyError([Problem("", f"not valid TOML: {error}")]) from error
    except RecursionError:  # arrays or tables nested thousands deep: the parser recurses
        raise PolicyError([Problem("", "not readable TOML: nested too deeply")]) from None
    reader.unknown_keys(table, _TOP_KEYS, "")
    name = reader.text(table, "name", "", required=False)
    reader.text(table, "description", "", required=False)
    detectors = reader.detectors(table.get("detectors"))
    raw_scenarios = table.get("scenarios")
    scenarios: list[Scenario] = []
    if not isinstance(raw_scenarios, list) or not raw_scenarios:
        reader.problem("scenarios", "a policy needs at least one [[scenarios]] table")
    elif len(raw_scenarios) > MAX_SCENARIOS:
        reader.problem("scenarios", f"at most {MAX_SCENARIOS} scenarios, got {len(raw_scenarios)}")
    else:
        seen: dict[str, int] = {}
        for index, raw in enumerate(raw_scenarios):
            where = f"scenarios[{index}]"
            scenario = reader.scenario(raw, where)
            raw_id = raw.get("id") if isinstance(raw, dict) else None
            if isinstance(raw_id, str) and raw_id in seen:
                reader.problem(f"{where}.id", f"duplicate id {raw_id!r}, first used by scenarios[{seen[raw_id]}]")
            elif isinstance(raw_id, str):
                seen[raw_id] = index
            if scenario is not None:
                scenarios.append(scenario)
        if scenarios and all(scenario.mode is Mode.SHADOW for scenario in scenarios):
            reader.problem("scenarios", "every scenario is in shadow mode; a policy needs at least one active one")
    if reader.problems:
        raise PolicyError(reader.problems)
    return Policy(version=version, scenarios=tuple(scenarios), detectors=detectors, name=name)


def policy_problems(document: str) -> list[Problem]:
    """Every problem of ``document``; empty when it is a valid policy."""
    try:
        read_policy(document, "")
    except PolicyError as error:
        return error.problems
    return []
