"""The grid service (网格): the grid's people — the staff register (who works which grid in
which role, and when) and patrols (巡查). docs/grid.md."""
