"""A local testbed: the Ollama API simulator behind a real Caddy, with certificates made here.

Used by `make demo`, the tests and the benchmarks. Everything binds to 127.0.0.1.
"""
