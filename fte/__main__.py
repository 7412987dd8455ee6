from fte.entry import run

run()
