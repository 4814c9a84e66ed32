"""`python -m system.frontdoor caddyfile`: print production's Caddyfile (deploy/Caddyfile);
`python -m system.frontdoor routes`: print the door's route table."""

from __future__ import annotations

import sys

from system.frontdoor.caddy import caddyfile
from system.frontdoor.table import table


def main(argv: list[str]) -> int:
    if argv == ["caddyfile"]:
        sys.stdout.write(caddyfile(table()))
        return 0
    if argv == ["routes"]:
        for route in table().routes:
            methods = ",".join(sorted(route.methods))
            sys.stdout.write(f"{methods:10} {route.path:60} {route.service}\n")
        return 0
    sys.stderr.write("usage: python -m system.frontdoor caddyfile|routes\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
