"""What each command does, returning data: nothing here prints or exits (the command line does)."""
