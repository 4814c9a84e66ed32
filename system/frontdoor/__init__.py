"""The front door (一个入口): one origin for every public API (under `/v1`), Open311, the
workbench with its live news, and the big screen, routed by path (and method) to the
services, each still its own process.

- `table.py`: the route table, derived from the services' own FastAPI apps (pure lookups);
- `proxy.py`: the embedded door `gridloop up` runs (`gridloop run door`), streaming;
- `caddy.py`: production's Caddyfile, generated from the same table
  (`python -m system.frontdoor caddyfile`, committed as `deploy/Caddyfile`).
"""
