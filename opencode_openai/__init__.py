"""opencode-openai: the APIs of the big model vendors in front of an OpenCode server.

The import root: this file and a link to each code folder at the top of the repository (the
layout rule is at the top of pyproject.toml).
"""

#: The one version number: the package's (pyproject reads it) and the served spec's.
__version__ = "0.1.0"
__all__ = ["__version__"]
