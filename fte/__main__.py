from fte.cli import main

main()
