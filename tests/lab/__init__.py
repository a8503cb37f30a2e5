"""Tests of the lab VM (ollama_fleet.lab)."""
