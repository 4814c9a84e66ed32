"""SLA: the deadline tracker (faust-streaming). Handling deadlines per department; a
deadline that passes unmet becomes a breach event on the `sla` topic."""
