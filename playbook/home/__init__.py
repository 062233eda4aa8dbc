"""The home: finding the user's folder, and reading its playbooks, channels.yaml and starter files."""
