from rollbackctl.cli import main

main()
