"""Intake: the supervision centre's door (监督中心). Reports from supervisors, the hotline
and the website; verification (核实) and on-site checks (核查) by supervisors."""
