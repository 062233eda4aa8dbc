"""The `playbook` command: each command parses its options, calls one function of the core and hands the
result to `playbook.output`. Nothing else.

Every command is listed here, in the order `playbook --help` shows them: `app` holds the typer app, its
global options and the error handler (`main`); the commands live with the ones they resemble.
"""

from playbook.cli import check_commands, home_commands, incident_commands
from playbook.cli.app import app, main

app.command()(home_commands.init)
app.command("list")(home_commands.list_playbooks)
app.command()(home_commands.show)
app.command()(check_commands.validate)
app.command()(home_commands.render)
app.command()(home_commands.faq)
app.command()(home_commands.checklist)
app.command()(check_commands.channels)
app.command()(incident_commands.trigger)
app.command()(incident_commands.update)
app.command()(incident_commands.resolve)
app.command()(incident_commands.resume)
app.command()(incident_commands.status)
app.command()(incident_commands.timeline)
app.command()(check_commands.rehearse)

__all__ = ["app", "main"]
