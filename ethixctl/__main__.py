from ethixctl.cli import main

main()
