"""Protocol translation: one package per wire protocol, between its requests and responses and
the typed, OpenCode-free turn plan and turn events of `opencode_openai.core`. No I/O here."""
