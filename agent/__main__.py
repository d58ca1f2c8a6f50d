"""``python -m agent`` = ``ymir-agent``."""

from agent.cli import main

main()
