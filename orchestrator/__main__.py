from orchestrator._cli import main

main()
