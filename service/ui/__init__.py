"""The dashboard: a browser UI under /ui served by the API's own app (issue 14).

Static pages and scripts (`static/`) that call the JSON API with the key the user signed in
with; no logic of their own beyond drawing, so every number and every role check is the
API's. `install_ui(app)` adds the routes."""

from service.ui.routes import install_ui

__all__ = ["install_ui"]
