"""The built-in channel types, each found through its `playbook.publishers` entry point like any plugin."""
