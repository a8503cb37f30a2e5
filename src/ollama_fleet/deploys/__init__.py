"""pyinfra deploys, one module per role, plus site.py and the runner that drives them.

This package is the only code that imports pyinfra. It runs in its own process
(`python -m ollama_fleet.deploys.runner`, started by ollama_fleet.controller), because pyinfra
patches the standard library with gevent; nothing else in ollama-fleet imports it.
"""
