"""Everything the terminal shows, and the only package that imports rich (inside the functions that draw).

One module per kind of screen: `console` (the masked console, one-line errors, JSON), `times` (times in the
playbook's zone), `home` (playbooks, FAQ, checklists, channels), `messages` (validation and previews), `plans`
(what is about to go out), `live` (the live progress view), `results` (what a publishing command did),
`incidents` (status and timeline) and `rehearsals`. Secrets are masked on the way out.
"""
