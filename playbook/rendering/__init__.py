"""Rendering: the sandboxed Jinja templates, the playbook's variables, and a phase's messages on every channel."""
