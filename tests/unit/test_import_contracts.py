"""The import contracts ([tool.importlinter] in pyproject.toml) hold on the tree, and each one
fails on a forbidden import: `lint-imports` runs on a copy of the packages with one import
added, never on the real tree (which the copy leaves untouched).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "gridloop", "services", "system", "bench")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONTRACTS = ("layers", "services", "pure", "circles")

# One forbidden import per contract: the file it goes in (relative to the root) and the line.
FORBIDDEN: dict[str, list[tuple[str, str]]] = {
    "layers": [
        ("gridloop/_probe.py", "import services.intake.core"),  # the kernel on a service
        ("schemas/_probe.py", "import gridloop.config"),  # the contract on the kernel
        ("services/_probe.py", "import system.up"),  # a service on the composition root
    ],
    "services": [("services/sla/_probe.py", "import services.notify.core")],
    "pure": [
        ("services/projections/core.py", "import pymongo"),
        ("services/sla/core.py", "from aiokafka import AIOKafkaProducer"),
        ("gridloop/lifecycle.py", "import fastapi"),
        ("schemas/events.py", "import gridloop.mongo"),  # indirectly: pymongo
    ],
    "circles": [("gridloop/kafka/metrics.py", "import gridloop.kafka.consumer")],
}


def lint_imports(root: Path) -> tuple[int, dict[str, str]]:
    """Run `lint-imports` on the packages under `root`; (exit code, verdict by contract id)."""
    run = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", "--verbose"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    verdicts = {}
    names = contract_names(root)
    text = " ".join(run.stdout.split())  # long names wrap
    for cid, name in names.items():
        found = re.search(re.escape(" ".join(name.split())) + r" (KEPT|BROKEN)", text)
        assert found, f"no verdict for {cid!r} in:\n{run.stdout}{run.stderr}"
        verdicts[cid] = found.group(1)
    return run.returncode, verdicts


def contract_names(root: Path) -> dict[str, str]:
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c["name"] for c in config["tool"]["importlinter"]["contracts"]}


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packages and their contracts, copied: what a probe may change."""
    target = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def test_the_contracts_are_the_four_named() -> None:
    assert tuple(contract_names(ROOT)) == CONTRACTS
    assert set(FORBIDDEN) == set(CONTRACTS)


def test_the_tree_keeps_every_contract(copy: Path) -> None:
    code, verdicts = lint_imports(copy)
    assert verdicts == dict.fromkeys(CONTRACTS, "KEPT")
    assert code == 0


@pytest.mark.parametrize(
    ("contract", "where", "line"),
    [(c, where, line) for c, probes in FORBIDDEN.items() for where, line in probes],
)
def test_a_forbidden_import_breaks_its_contract(
    copy: Path, contract: str, where: str, line: str
) -> None:
    path = copy / where
    before = path.read_text(encoding="utf-8") if path.exists() else None
    path.write_text((before or "") + f"\n{line}  # probe\n", encoding="utf-8")
    try:
        code, verdicts = lint_imports(copy)
    finally:
        if before is None:
            path.unlink()
        else:
            path.write_text(before, encoding="utf-8")
    assert verdicts[contract] == "BROKEN", verdicts
    assert code != 0


def test_the_probes_leave_the_real_tree_alone() -> None:
    for probes in FORBIDDEN.values():
        for where, _ in probes:
            path = ROOT / where
            assert not path.exists() or "# probe" not in path.read_text(encoding="utf-8")
