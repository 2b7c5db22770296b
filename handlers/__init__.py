"""Connexion handlers, named by the spec's operationIds. They wire, they do not decide."""
