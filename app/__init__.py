"""The composition root: the Connexion app built from openapi/openapi.yaml, with its middleware."""

from opencode_openai.app.factory import create_app, load_spec

__all__ = ["create_app", "load_spec"]
