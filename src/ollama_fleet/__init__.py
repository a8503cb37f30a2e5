"""ollama-fleet: provision, verify and diagnose fleets of Ollama servers."""

__version__ = "0.1.0"

__all__ = ["__version__"]
