"""The gateway: API keys, rate limits, model-aware balancing and streaming in front of Ollama nodes.

Clients speak Ollama's API (/api/...) or OpenAI's (/v1/...) to it; it authenticates the key,
applies its limits, picks a node that has the model (loaded, with a free slot, if it can) and
relays the answer byte for byte as it arrives. docs/gateway.md is the user's guide.
"""
