"""The handheld (城管通): the console's mobile web app for the people in the street —
supervisors first (监督员: their 核实 and 核查 tasks, reports with photo, voice note and GPS
point), and the grid's staff (网格员). Installable (a web app manifest, icons, a service
worker that keeps the shell), and usable offline: what a person does without network waits
in an outbox on the device (IndexedDB) and is sent when the network returns, each action
under the Idempotency-Key the device made when it was done (docs/handheld.md).

`core.py` decides (tabs, task rows and lights, the bodies sent to intake); `routes.py`
serves the pages under `/m/` and the few JSON calls the device's outbox makes, each a call
of intake's own API with the person's session token (`kit.ask`), as every console page."""

from services.console.handheld.routes import API, install

__all__ = ["API", "install"]
