"""Fixtures of the reporting tests."""

from chat_server import chat_server  # noqa: F401  (the local chat-completions server fixture)
