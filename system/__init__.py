"""The composition root: the `gridloop` command, `gridloop up`, the demo, the department desk
and the simulator. It puts the services together into one running system and is the only
package that imports them all; nothing imports it but the tests and the benches.

Layers, one way (`lint-imports` checks them): schemas ← gridloop (kernel) ← services ← system.
"""
