from mlauto.cli import main

main()
