"""MkDocs hook: links from a page to repository files outside ``docs/`` (e.g. ``../benchmarks/README.md``).

MkDocs can only link to documentation files, so in strict mode such links fail the build. A link whose
target exists in the repository outside ``docs/`` is replaced by its text (which names the path); any other
broken link is left alone, so strict mode still reports it.
"""

from __future__ import annotations

import os
import re

_LINK = re.compile(r"\[([^\]]+)\]\((\.\./[^)\s#]+)(#[^)]*)?\)")


def on_page_markdown(markdown, page, config, files):
    docs_dir = os.path.abspath(config["docs_dir"])
    page_dir = os.path.dirname(os.path.join(docs_dir, page.file.src_path))

    def _replace(m):
        target = os.path.abspath(os.path.join(page_dir, m.group(2)))
        outside = os.path.relpath(target, docs_dir).startswith("..")
        return m.group(1) if outside and os.path.exists(target) else m.group(0)

    return _LINK.sub(_replace, markdown)
