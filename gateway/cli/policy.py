"""``mtsg policy ...`` and ``mtsg verdicts ...``: the detection policy and its decisions, from the host.

Like the registry commands these open the gateway's store directly; every running
gateway swaps a new version in at its next poll (a quarter of a second by default).
``validate``, ``test``, ``codes`` and ``default`` need no store at all.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from blocklists.formats import format_timestamp, parse_timestamp
from blocklists.matcher import Matcher
from gateway.cli.check import format_verdict, verdict_json
from gateway.cli.policy_cases import CaseError, PolicyCase, read_cases
from gateway.cli.support import (
    CommandError,
    ConfigLoader,
    StoreCommands,
    actor,
    add_actor_flag,
    ensure_readable,
    given_name,
    plain_text,
    positive_count,
    positive_number,
    run_async,
    with_store,
)
from gateway.generated.mtsg.v1 import threat_signal_service_pb2
from gateway.login.validation import Limits
from gateway.policy.admin import (
    MAX_DOCUMENT_BYTES,
    PolicyVersionNotFoundError,
    apply_policy,
    parse_version,
    rollback_policy,
)
from gateway.policy.knowledge import KnowledgeError, load_remote_control_catalog, shipped_policy_document
from gateway.store import Store, StoreUnavailableError
from gateway.store.errors import RequestIdReusedError
from gateway.store.records import StoredPolicy, VerdictQuery
from signals.catalog import FINDING_KINDS
from signals.evaluate import Knowledge, evaluate
from signals.policy import Decision, Mode
from signals.policy_document import PolicyError, Problem, read_policy
from signals.policy_review import review_policy
from signals.wording import counted

_EXPECTED = (StoreUnavailableError, KnowledgeError, CaseError, RequestIdReusedError, OSError)


def _read_document(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise CommandError(f"{path} is larger than {MAX_DOCUMENT_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"cannot read {path}: {error}") from error


def _print_problems(path: object, error: PolicyError) -> None:
    print(f"{path}: {counted(len(error.problems), 'problem')}; nothing was applied", file=sys.stderr)
    for problem in error.problems:
        print(f"  {problem}", file=sys.stderr)


def _version_line(stored: StoredPolicy, in_force: bool) -> str:
    restored = f" (restores {stored.restored_version})" if stored.restored_version else ""
    marker = "*" if in_force else " "
    return (
        f"{marker} {stored.version:>4}  {format_timestamp(stored.applied_at)}  {stored.document_sha256[:12]}"
        f"  {stored.applied_by}{restored}  {stored.comment}"
    )


def _store_run(
    name: str,
    options: argparse.Namespace,
    load: ConfigLoader,
    work: Callable[[Store], Awaitable[int]],
    *,
    creates: bool = False,
    check_first: Callable[[], object] | None = None,
) -> int:
    """``work`` on the store; ``check_first`` runs before the store is opened, so its refusal makes none."""

    def guarded() -> Coroutine[Any, Any, int]:
        if check_first is not None:
            check_first()
        return with_store(load(options), work, creates=creates)

    try:
        return run_async(name, guarded, _EXPECTED)
    except PolicyError as error:
        _print_problems(getattr(options, "file", "policy"), error)
        return 1


def _show(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        version = parse_version(options.version) if options.version else None
        stored = await store.policies.get(version)
        if stored is None and version is None:
            raise CommandError("no policy applied yet: a gateway puts the shipped one in force at its first start")
        if stored is None:
            raise CommandError(str(PolicyVersionNotFoundError(options.version)))
        print(
            f"# policy version {stored.version}, applied {format_timestamp(stored.applied_at)} by {stored.applied_by}"
        )
        print(f"# sha256 {stored.document_sha256}  {stored.comment}")
        print(stored.document, end="" if stored.document.endswith("\n") else "\n")
        return 0

    return _store_run("policy show", options, load, _guard_version(work))


def _guard_version(work: Callable[[Store], Awaitable[int]]) -> Callable[[Store], Awaitable[int]]:
    async def guarded(store: Store) -> int:
        try:
            return await work(store)
        except PolicyVersionNotFoundError as error:
            raise CommandError(str(error)) from error

    return guarded


def _validate(options: argparse.Namespace) -> int:
    try:
        policy = read_policy(_read_document(options.file), "")
    except CommandError as error:
        print(f"mtsg policy validate: {error}", file=sys.stderr)
        return 2
    except PolicyError as error:
        _print_problems(options.file, error)
        return 1
    shadow = sum(scenario.mode is Mode.SHADOW for scenario in policy.scenarios)
    print(f"{options.file}: valid; {counted(len(policy.scenarios), 'scenario')}, {shadow} in shadow mode")
    _print_warnings(options.file, review_policy(policy))
    return 0


def _print_warnings(path: object, warnings: list[Problem]) -> None:
    """The review's warnings, on stderr: they never fail the command, the security team decides."""
    if not warnings:
        return
    print(f"{path}: {counted(len(warnings), 'warning')}", file=sys.stderr)
    for warning in warnings:
        print(f"  warning: {warning}", file=sys.stderr)


def _apply(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        document = _read_document(options.file)
        applied = await apply_policy(
            store,
            document,
            actor=actor(options),
            comment=options.comment,
            at=time.time(),
            request_id=options.request_id,
        )
        stored = applied.stored
        if applied.created:
            print(f"policy version {stored.version} is in force (sha256 {stored.document_sha256[:12]})")
        else:
            print(
                f"policy version {stored.version} already has this document (sha256 {stored.document_sha256[:12]});"
                " no new version was made"
            )
        _print_warnings(options.file, applied.warnings)
        return 0

    return _store_run("policy apply", options, load, work, creates=True, check_first=lambda: _check_file(options.file))


def _check_file(path: Path) -> None:
    """Refuse a policy file that cannot be applied before any store is opened: with a mistyped --data-dir,
    or none, a policy with problems made a new store before it was refused."""
    ensure_readable(path)
    read_policy(_read_document(path), "")


def _versions(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        head = await store.policies.head_version()
        for stored in await store.policies.versions(options.limit, options.before):
            print(_version_line(stored, stored.version == head))
        return 0

    return _store_run("policy versions", options, load, work)


def _rollback(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        stored = await rollback_policy(
            store, options.version, actor=actor(options), comment=options.comment, at=time.time()
        )
        print(f"policy version {stored.version} is in force: the document of version {stored.restored_version}")
        return 0

    return _store_run("policy rollback", options, load, _guard_version(work))


def _shadow_report(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        until = time.time()
        rows = await store.policies.shadow_report(until - options.hours * 3600, until)
        print(f"shadow scenarios over the last {counted(options.hours, 'hour')}")
        if not rows:
            print("  none fired")
        for row in rows:
            actual = ", ".join(f"{action.removeprefix('ACTION_')} {n}" for action, n in row.by_actual_action.items())
            print(
                f"  {row.scenario_id}: would {row.would_action.removeprefix('ACTION_')} {counted(row.fired, 'login')}"
                f" of {counted(row.customers, 'customer')}; {row.would_change} would have changed the verdict"
                f"  (actual: {actual}; policy version {', '.join(row.policy_versions)})"
            )
        return 0

    return _store_run("policy shadow-report", options, load, work)


def _decision_lines(case: PolicyCase, decision: Decision) -> list[str]:
    head = f"{case.name}: {decision.action.name}"
    head += f" by {decision.scenario_id}" if decision.scenario_id else " (no scenario fired)"
    lines = [head, f"    {decision.summary}"]
    for fired in decision.fired:
        tag = "decides" if fired.deciding else ("shadow" if fired.mode is Mode.SHADOW else "fires")
        lines.append(f"    {tag:<8} {fired.scenario_id} -> {fired.action.name} (score {fired.score})")
    for reason in decision.reasons:
        lines.append(f"    finding  {reason.finding.code} [{reason.finding.severity.name}] {reason.finding.message}")
    return lines


def _expectation_failure(case: PolicyCase, decision: Decision) -> str:
    expect = case.expect
    if expect is None:
        return ""
    if expect.action and expect.action != decision.action.name:
        return f"expected {expect.action}, got {decision.action.name}"
    if expect.scenario is not None and expect.scenario != decision.scenario_id:
        return f"expected scenario {expect.scenario or '(none)'}, got {decision.scenario_id or '(none)'}"
    return ""


def _test(options: argparse.Namespace, load: ConfigLoader) -> int:
    """Run a policy over recorded cases; exit 1 when a case's expectation fails or the policy is invalid."""
    try:
        policy = read_policy(_read_document(options.file), f"test:{options.file.name}")
        config = load(options)
        cases = read_cases(options.cases, Limits.of(config), time.time())
        catalog = load_remote_control_catalog(config.signals.remote_control_apps_file)
    except CommandError as error:
        print(f"mtsg policy test: {error}", file=sys.stderr)
        return 2
    except PolicyError as error:
        _print_problems(options.file, error)
        return 1
    except (CaseError, KnowledgeError) as error:
        print(f"mtsg policy test: {error}", file=sys.stderr)
        return 2
    matcher = _registry(options, load) if options.registry else Matcher.empty()
    if matcher is None:
        return 1
    knowledge = Knowledge(policy=policy, remote_control=catalog, blocklist=matcher)
    failures = 0
    for case in cases:
        decision = evaluate(case.telemetry, case.context, knowledge)
        print("\n".join(_decision_lines(case, decision)))
        failure = _expectation_failure(case, decision)
        if failure:
            failures += 1
            print(f"    FAILED: {failure}")
    print(f"{counted(len(cases), 'case')}, {counted(failures, 'failed expectation')}")
    return 1 if failures else 0


def _registry(options: argparse.Namespace, load: ConfigLoader) -> Matcher | None:
    """The store's malicious-app registry, for cases that rely on blocklist hits."""
    loaded: list[Matcher] = []

    async def work(store: Store) -> int:
        loaded.append(await store.blocklist.load_matcher())
        return 0

    code = run_async("policy test", lambda: with_store(load(options), work), _EXPECTED)
    return loaded[0] if code == 0 else None


def _codes(options: argparse.Namespace) -> int:
    for kind in sorted(FINDING_KINDS.values(), key=lambda kind: (kind.category, kind.code)):
        severities = "/".join(severity.name.lower() for severity in sorted(kind.severities))
        measures = ", ".join(f"{m.name} ({m.unit})" for m in kind.measures.values())
        per_app = ", one per app" if kind.per_app else ""
        print(f"{kind.code:<44} {kind.category:<17} {severities}{per_app}")
        print(f"    {kind.description}" + (f"  Measures: {measures}." if measures else ""))
    return 0


def _default(options: argparse.Namespace) -> int:
    print(shipped_policy_document(), end="")
    return 0


def _period(options: argparse.Namespace) -> tuple[float | None, float | None]:
    """[since, until) from --hours or --since/--until (RFC 3339); CommandError for a bad or empty period."""
    if options.hours is not None and options.since:
        raise CommandError("give --hours or --since, not both")
    try:
        since = parse_timestamp(options.since) if options.since else None
        until = parse_timestamp(options.until) if options.until else None
    except ValueError as error:
        raise CommandError(str(error)) from error
    if options.hours is not None:
        since = time.time() - options.hours * 3600
    if since is not None and until is not None and until <= since:
        raise CommandError("--until must be later than the start of the period")
    return since, until


def _verdicts_list(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        since, until = _period(options)
        rows = await store.list_verdicts(VerdictQuery(options.customer, since=since, until=until, limit=options.limit))
        for row in rows:
            response = threat_signal_service_pb2.CheckLoginResponse.FromString(row.response)
            print(
                f"{format_timestamp(row.decided_at)}  {row.verdict_id}  {row.action.removeprefix('ACTION_'):<8}"
                f" risk {response.risk_score:>3}  {response.scenario_id or '-':<36} device {row.device_id}"
                f"  policy {response.policy_version}"
            )
            if options.reasons:
                print(f"    {response.summary}")
        if not rows:
            print(f"no verdicts for customer {options.customer!r} in that period", file=sys.stderr)
        return 0

    return run_async("verdicts list", lambda: with_store(load(options), work), _EXPECTED)


def _verdicts_show(options: argparse.Namespace, load: ConfigLoader) -> int:
    async def work(store: Store) -> int:
        row = await store.get_verdict(options.verdict_id)
        if row is None:
            raise CommandError(f"no verdict {options.verdict_id}")
        response = threat_signal_service_pb2.CheckLoginResponse.FromString(row.response)
        print(verdict_json(response) if options.json else f"customer {row.customer_id}\n{format_verdict(response)}")
        return 0

    return run_async("verdicts show", lambda: with_store(load(options), work), _EXPECTED)


def add_policy_commands(commands: argparse._SubParsersAction, add_config_flags: Any, load: ConfigLoader) -> None:  # type: ignore[type-arg]
    """Attach ``policy`` and ``verdicts`` to the ``mtsg`` parser."""
    group = commands.add_parser("policy", help="the detection policy: versions, apply, rollback, test, shadow report")
    sub = group.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")

    with_config = StoreCommands(add_config_flags, load).bind

    show = with_config(sub.add_parser("show", help="print the policy in force (or --version N)"), _show)
    show.add_argument("--version", default="", help="an earlier version")
    validate = sub.add_parser("validate", help="check a policy file and list every problem; nothing is applied")
    validate.add_argument("file", type=Path)
    validate.set_defaults(run=_validate)
    apply = with_config(
        sub.add_parser("apply", help="validate a policy file and put it in force as a new version"), _apply
    )
    apply.add_argument("file", type=Path)
    apply.add_argument("--comment", default="", type=plain_text, help="why, for the version list and the audit trail")
    apply.add_argument("--request-id", default="", help="idempotency key: a retried apply makes no second version")
    add_actor_flag(apply)
    versions = with_config(sub.add_parser("versions", help="stored versions, newest first (* in force)"), _versions)
    versions.add_argument("--limit", type=positive_count, default=20)
    versions.add_argument(
        "--before", type=positive_count, default=0, metavar="VERSION", help="older than this version (paging)"
    )
    rollback = with_config(sub.add_parser("rollback", help="bring an earlier version back as a new version"), _rollback)
    rollback.add_argument("version")
    rollback.add_argument("--comment", default="", type=plain_text, help="why")
    add_actor_flag(rollback)
    test = with_config(
        sub.add_parser("test", help="run a policy file over recorded login cases, before it goes live"), _test
    )
    test.add_argument("file", type=Path)
    test.add_argument("--cases", type=Path, required=True, help="directory of *.json cases (see docs/POLICY.md)")
    test.add_argument("--registry", action="store_true", help="match apps against the store's registry too")
    report = with_config(sub.add_parser("shadow-report", help="what shadow scenarios would have done"), _shadow_report)
    report.add_argument("--hours", type=positive_number, default=24.0, help="period to summarise (default 24)")
    sub.add_parser("codes", help="every finding code: category, severities, measures").set_defaults(run=_codes)
    sub.add_parser("default", help="print the policy shipped with mtsg").set_defaults(run=_default)

    verdicts = commands.add_parser("verdicts", help="verdicts by customer and time")
    vsub = verdicts.add_subparsers(dest="verdicts_command", required=True, metavar="SUBCOMMAND")
    listing = with_config(vsub.add_parser("list", help="a customer's verdicts, newest first"), _verdicts_list)
    listing.add_argument("--customer", required=True, type=given_name)
    listing.add_argument("--hours", type=positive_number, help="only the last N hours")
    listing.add_argument("--since", default="", help="from this time (RFC 3339, e.g. 2026-11-21T09:00:00Z)")
    listing.add_argument("--until", default="", help="before this time (RFC 3339)")
    listing.add_argument("--limit", type=positive_count, default=50)
    listing.add_argument("--reasons", action="store_true", help="print each verdict's summary too")
    one = with_config(vsub.add_parser("show", help="one verdict, as the app received it"), _verdicts_show)
    one.add_argument("verdict_id")
    one.add_argument("--json", action="store_true")
