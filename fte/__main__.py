from fte.cli import run

run()
