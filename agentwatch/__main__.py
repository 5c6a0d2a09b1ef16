from agentwatch.entry import main

main()
