"""The simulator (`gridloop simulate`, `gridloop demo`): the people of the closed loop,
played against a running system through its public interfaces.

- `profile.py`: the scenario and its distributions (pure, seeded)
- `receivers.py`: the departments' webhook receivers, built in
- `driver.py`: the people acting: reports, verifications, department callbacks, the
  command centre, checks, feedback
- `summary.py`: the counts, the progress bar and the live table
- `system.py`: its own embedded system on a compressed clock, and the credentials
- `run.py`: the pieces put together

See docs/simulator.md.
"""
