"""opencode-openai: an OpenAI-compatible API in front of an OpenCode server."""

__version__ = "0.1.0"
__all__ = ["__version__"]
