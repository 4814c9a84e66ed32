from gridloop.cli import app

app(prog_name="gridloop")
