"""`playbook init`: a working home copied from the starter shipped inside the package."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from playbook.errors import HomeError

# The wheel carries the repository's templates/ as playbook/_starter; a source checkout reads it in place.
_PACKAGE = Path(__file__).parents[1]
_PACKAGED = _PACKAGE / "_starter"
_SOURCE = _PACKAGE.parent / "templates"

GITIGNORE = """# The ledger and logs are the record of what was sent: back them up, but keep them out of git.
.playbook/
# Secrets: set them in the environment or here, never in git.
.env
"""


def starter_dir() -> Path:
    for candidate in (_PACKAGED, _SOURCE):
        if (candidate / "channels.yaml").is_file():
            return candidate
    raise HomeError("the starter home is missing from this installation: reinstall crisis-playbook")


def write_starter(directory: Path, *, force: bool = False) -> list[Path]:
    """Copy the starter into `directory` laid out as a home; returns the files written."""
    if directory.exists() and any(directory.iterdir()) and not force:
        raise HomeError(f"{directory} is not empty: choose a new folder, or pass --force to write into it")
    source = starter_dir()
    written: list[Path] = []

    def copy(src: Path, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        written.append(dest)

    for playbook in sorted(source.glob("*.yaml")):
        if playbook.name == "channels.yaml":
            copy(playbook, directory / "channels.yaml")
        else:
            copy(playbook, directory / "playbooks" / playbook.name)
            for template in sorted((source / playbook.stem).glob("*.j2")):
                copy(template, directory / "templates" / playbook.stem / template.name)
    for extra in sorted((source / "contacts").glob("*")) if (source / "contacts").is_dir() else []:
        copy(extra, directory / "contacts" / extra.name)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text(GITIGNORE)
        written.append(ignore)
    return written


def command_name() -> str:
    """How to run this very `playbook` from a shell: its name when the PATH finds it, else a full path."""
    found = shutil.which("playbook")
    invoked = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if found and (invoked is None or invoked.name != "playbook" or Path(found).resolve() == invoked.resolve()):
        return "playbook"
    if invoked is not None and invoked.name == "playbook" and invoked.is_file():
        return shlex.quote(str(invoked.resolve()))
    if found:
        return "playbook"
    return f"{shlex.quote(sys.executable)} -m playbook"


def next_steps(directory: Path) -> list[str]:
    """The commands to run after `init`, each one a line that works as printed (pasted in the same shell)."""
    program = command_name()
    folder = shlex.quote(str(directory))
    return [f"cd {folder} && {program} validate", f"{program} trigger whatsapp-outage --dry-run"]
