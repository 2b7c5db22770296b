"""The `opencode-openai` command."""
