"""`type: status-page`: a static status site (HTML, JSON, Atom, a banner script) written into a folder of the home.

The package's face: `state` is what the site holds (state.json), `view` what a page in one language shows,
`site` writes the files; the page's words (labels.json), its template (page.html.j2) and the banner script
for the main website (banner.js) are data files beside them.
"""

from playbook.channels.status_page.publisher import StatusPageConfig, StatusPagePublisher, status_of

__all__ = ["StatusPageConfig", "StatusPagePublisher", "status_of"]
