from system.cli import app

app(prog_name="gridloop")
