"""The `playbook` command: each command parses its options, calls one function of the core and hands the
result to `playbook.output`. Nothing else.

Every command is listed here, in the order `playbook --help` shows them: `app` holds the typer app, its
global options and the error handler (`main`); the commands live with the ones they resemble.
"""

from playbook.cli import check_commands, home_commands, incident_commands, worker_commands
from playbook.cli.app import app, main
from playbook.cli.ledger_commands import ledger_app

# typer takes the name from the function, except for `list`, whose function may not shadow the builtin.
for command in (home_commands.init, home_commands.list_playbooks, home_commands.show, check_commands.validate,
                home_commands.render, home_commands.faq, home_commands.checklist, check_commands.channels,
                incident_commands.trigger, incident_commands.update, incident_commands.resolve,
                incident_commands.resume, incident_commands.status, incident_commands.timeline,
                check_commands.rehearse, worker_commands.worker, worker_commands.watch):
    app.command("list" if command is home_commands.list_playbooks else None)(command)
app.add_typer(ledger_app)

__all__ = ["app", "main"]
