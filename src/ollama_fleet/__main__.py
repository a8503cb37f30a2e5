"""Run the CLI as `python -m ollama_fleet`."""

from ollama_fleet.cli import main

main()
