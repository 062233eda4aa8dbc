"""`type: status-page`: a static status site (HTML, JSON, Atom, a banner script) in a folder or an S3 bucket.

The package's face: `state` is what the site holds (folded from the ledger's history, and a folder's
state.json), `view` what a page in one language shows, `site` renders the files, `bucket` uploads them to an
S3-compatible bucket; the page's words (labels.json), its template (page.html.j2) and the banner script for
the main website (banner.js) are data files beside them.
"""

from playbook.channels.status_page.publisher import StatusPageConfig, StatusPagePublisher, status_of

__all__ = ["StatusPageConfig", "StatusPagePublisher", "status_of"]
