"""An import map that points the browser's ES-module imports at the hashed static files.

With the hashed-manifest storage, `{% static 'games/main.js' %}` names main.<hash>.js, but the
`import ... from "./api.js"` inside it names the plain file: after a deploy a browser could run
new modules against a cached old api.js (or the reverse). Django's storage cannot rewrite
those imports for us, so the pages carry an import map instead: every module's plain URL mapped
to its hashed URL. Browsers apply it to each import after resolving it, so relative imports keep
working and every module is fetched under its hashed, cache-forever name.
"""

from __future__ import annotations

import functools
import json

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

MODULE_FOLDERS = ("games/", "maps/")


@functools.cache
def import_map() -> dict[str, dict[str, str]]:
    """{"imports": {plain URL: hashed URL}} for every ES module; empty when URLs are not hashed."""
    names = sorted(
        path
        for finder in finders.get_finders()
        for path, _ in finder.list(ignore_patterns=[])
        if path.endswith(".js") and path.startswith(MODULE_FOLDERS)
    )
    imports = {settings.STATIC_URL + name: staticfiles_storage.url(name) for name in names}
    return {"imports": {plain: hashed for plain, hashed in imports.items() if plain != hashed}}


def import_map_tag() -> SafeString:
    """The `<script type="importmap">` element, or nothing when the URLs are not hashed."""
    mapping = import_map()
    if not mapping["imports"]:
        return mark_safe("")
    # JSON inside <script>: "</" cannot close the element once escaped (static paths hold none anyway).
    body = json.dumps(mapping, sort_keys=True).replace("</", "<\\/")
    return format_html('<script type="importmap">{}</script>', mark_safe(body))
