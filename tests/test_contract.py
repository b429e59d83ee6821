"""The contract: generated code matches proto/, buf lint passes, and the rooms keep their import rules."""

from __future__ import annotations

import ast
import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _differences(left: Path, right: Path) -> list[str]:
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__"])
    found = [*comparison.left_only, *comparison.right_only, *comparison.diff_files]
    found += [name for name in comparison.common_files if not filecmp.cmp(left / name, right / name, shallow=False)]
    for name, _sub in comparison.subdirs.items():
        found += [f"{name}/{item}" for item in _differences(left / name, right / name)]
    return sorted(set(found))


def test_checked_in_generated_code_matches_the_protos(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    subprocess.run([sys.executable, str(REPO / "scripts" / "generate_protos.py"), "--out", str(out)], check=True)
    drift = _differences(REPO / "gateway" / "generated", out)
    assert drift == [], f"regenerate with: python scripts/generate_protos.py (drifted: {drift})"


def test_buf_lint_passes() -> None:
    buf = shutil.which("buf") or str(Path(sys.executable).parent / "buf")
    result = subprocess.run([buf, "lint"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


FORBIDDEN_IN_CORE = (
    "gateway",
    "grpc",
    "grpc_status",
    "google",
    "aiosqlite",
    "asyncpg",
    "httpx",
    "structlog",
    "prometheus_client",
)


@pytest.mark.parametrize(
    ("room", "forbidden"),
    [("signals", FORBIDDEN_IN_CORE), ("blocklists", (*FORBIDDEN_IN_CORE, "signals"))],
)
def test_core_rooms_import_nothing_of_the_shell(room: str, forbidden: tuple[str, ...]) -> None:
    offenders = []
    for path in (REPO / room).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO)}: {name}" for name in names if name.split(".")[0] in forbidden]
    assert offenders == []


def test_core_rooms_do_no_io() -> None:
    """No clock, no files, no sockets in the pure rooms (they get data, they do not fetch it)."""
    banned = {"open", "time", "datetime.now", "os", "socket", "pathlib", "random"}
    offenders = []
    for room in ("signals", "blocklists"):
        for path in (REPO / room).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    if module and module.split(".")[0] in banned:
                        offenders.append(f"{path.relative_to(REPO)} imports {module}")
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
                    offenders.append(f"{path.relative_to(REPO)} calls open()")
                clock = {"now", "utcnow", "today", "monotonic", "perf_counter"}
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in clock:
                    offenders.append(f"{path.relative_to(REPO)} reads the clock ({node.func.attr}())")
    assert offenders == []


def test_every_error_reason_of_the_contract_is_one_the_gateway_sends() -> None:
    """The contract documents each ErrorInfo reason; the code can send no other (its error helpers take only
    ErrorReason values, which mypy holds them to), and this checks no documented reason is dead."""
    from gateway.generated.mtsg.v1.error_reason_pb2 import ErrorReason

    sources = "\n".join(path.read_text() for path in (REPO / "gateway").rglob("*.py") if "generated" not in path.parts)
    documented = [value.name for value in ErrorReason.DESCRIPTOR.values if value.number != 0]
    assert len(documented) >= 25
    assert [name for name in documented if name not in sources] == []
