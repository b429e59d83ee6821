"""Regenerate the checked-in Python code for the mtsg.v1 contract.

The contract lives in ``proto/mtsg/v1``; the code generated from it is checked in
under ``gateway/generated`` so that installing mtsg never needs protoc.  protoc
writes imports as ``from mtsg.v1 import x_pb2``; we rewrite them to the package
path so the generated modules import each other from inside ``gateway``, while the
descriptors keep their ``mtsg/v1/*.proto`` names (what reflection shows).

Usage:  python scripts/generate_protos.py [--out DIR]
The drift test runs this with ``--out`` pointing at a temporary directory and
compares the result byte for byte with the checked-in tree.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "proto"
DEFAULT_OUT = REPO / "gateway" / "generated"
PACKAGE_PREFIX = "gateway.generated"
_IMPORT = re.compile(r"^from mtsg\.v1 import ", re.MULTILINE)


def generate(out_dir: Path) -> list[Path]:
    """Write the generated package to ``out_dir`` (replacing it) and return its files."""
    from grpc_tools import protoc  # dev dependency: only needed to regenerate

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as raw:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={raw}",
            f"--pyi_out={raw}",
            f"--grpc_python_out={raw}",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed; see the messages above")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        written: list[Path] = []
        for source in sorted(Path(raw).rglob("*.py*")):
            target = out_dir / source.relative_to(raw)
            target.parent.mkdir(parents=True, exist_ok=True)
            text = _IMPORT.sub(f"from {PACKAGE_PREFIX}.mtsg.v1 import ", source.read_text())
            target.write_text(text)
            written.append(target)
    for package_dir in [out_dir, out_dir / "mtsg", out_dir / "mtsg" / "v1"]:
        init = package_dir / "__init__.py"
        init.write_text('"""Generated from proto/ by scripts/generate_protos.py; do not edit."""\n')
        written.append(init)
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    options = parser.parse_args(argv)
    files = generate(options.out)
    print(f"wrote {len(files)} files under {options.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
