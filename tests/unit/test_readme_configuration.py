"""README's configuration table names every port a newcomer may have to move, each with its
variable and default (a port in use is refused by naming that variable)."""

from __future__ import annotations

from pathlib import Path

from gridloop.config import Settings
from system.up import PORT_ENV

README = Path(__file__).resolve().parents[2] / "README.md"


def configuration_rows() -> dict[str, str]:
    """The rows of README's configuration table, by the variable in their first cell."""
    section = README.read_text(encoding="utf-8").split("## Configuration", 1)[1]
    rows = (line for line in section.splitlines() if line.startswith("| `"))
    return {row.split("|")[1].strip().strip("`"): row for row in rows}


def test_every_port_has_its_row_with_variable_and_default() -> None:
    rows = configuration_rows()
    ports = [name for name in Settings.model_fields if name.endswith("_port")]
    assert len(ports) == len(PORT_ENV)  # every service `up` starts, the desk among them
    for name in ports:
        variable = f"GRIDLOOP_{name.upper()}"
        assert variable == PORT_ENV[name.removesuffix("_port")]
        assert variable in rows, f"README's configuration table has no row for {variable}"
        default = Settings.model_fields[name].default
        assert f"| {default} |" in rows[variable], rows[variable]
