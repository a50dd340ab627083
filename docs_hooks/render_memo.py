"""In-process memo of Markdown rendering and search indexing, for ``mkdocs serve`` rebuilds.

A page renders to the same HTML when its final Markdown, its location, the site's file list and the
Markdown configuration are the same; its search entries are the same when its HTML, title, location and
metadata are. Under ``mkdocs serve`` every rebuild runs in the same process, so after editing one page
only that page is rendered and indexed again. A page whose rendering logged anything is never memoised:
its warnings are repeated on every build. A one-off ``mkdocs build`` renders everything, as before.
"""
from __future__ import annotations

import copy
import hashlib
import logging
from collections import OrderedDict
from typing import Any

LIMIT = 512
_RENDERED: OrderedDict[str, dict] = OrderedDict()
_INDEXED: OrderedDict[str, list] = OrderedDict()
_BUILD: dict[str, Any] = {}
STATS = {"rendered": 0, "reused": 0, "indexed": 0, "index_reused": 0}


def _remember(memo: OrderedDict, key: str, value) -> None:
    memo[key] = value
    memo.move_to_end(key)
    while len(memo) > LIMIT:
        memo.popitem(last=False)


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def start_build(config, files) -> None:
    """Fix this build's signature: the Markdown configuration and every file's source and URL."""
    rows = sorted(f"{f.src_uri}\t{f.url}\t{f.dest_uri}" for f in files)
    _BUILD["signature"] = _digest(repr(config["markdown_extensions"]), repr(config["mdx_configs"]),
                                  repr(config["use_directory_urls"]), repr(config.get("validation")),
                                  *rows)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record) -> None:
        self.count += 1


def memoise_render(page) -> None:
    """Make ``page.render`` reuse an earlier identical rendering (see the module's docstring)."""
    signature = _BUILD.get("signature")
    if signature is None:
        return
    original = page.render

    def render(config, files) -> None:
        key = _digest(signature, page.file.src_uri, page.url, page.markdown or "")
        hit = _RENDERED.get(key)
        links = None
        if hit is not None and hit["links_to_anchors"] is not None:
            links = {files.get_file_from_path(uri): dict(v) for uri, v in hit["links_to_anchors"].items()}
            if None in links:                 # a linked file is gone: render again
                hit = None
        if hit is not None:
            page.content = hit["content"]
            page.toc = copy.deepcopy(hit["toc"])
            page._title_from_render = hit["title"]
            page.present_anchor_ids = set(hit["anchors"])
            if links is not None:
                page.links_to_anchors = links
            STATS["reused"] += 1
            return
        watcher = _Records()
        logger = logging.getLogger("mkdocs")
        logger.addHandler(watcher)
        try:
            original(config, files)
        finally:
            logger.removeHandler(watcher)
        STATS["rendered"] += 1
        if watcher.count:
            return
        links = getattr(page, "links_to_anchors", None)
        _remember(_RENDERED, key, {
            "content": page.content, "toc": copy.deepcopy(page.toc),
            "title": getattr(page, "_title_from_render", None),
            "anchors": set(page.present_anchor_ids or ()),
            "links_to_anchors": None if links is None else {f.src_uri: dict(v) for f, v in links.items()},
        })

    page.render = render


def _entries_of(index) -> list | None:
    for name in ("entries", "_entries"):
        value = getattr(index, name, None)
        if isinstance(value, list):
            return value
    return None


def memoise_search(config) -> None:
    """Make the search plugin reuse a page's index entries when its HTML, title, URL and metadata repeat."""
    for plugin in config.plugins.values():
        index = getattr(plugin, "search_index", None)
        entries = _entries_of(index) if index is not None else None
        if entries is None or not hasattr(index, "add_entry_from_context"):
            continue
        original = index.add_entry_from_context

        def add(page, *, _original=original, _entries=entries) -> None:
            toc = "|".join(f"{t.id}:{t.title}" for t in _walk(page.toc))
            key = _digest(page.url, str(page.title), repr(sorted(page.meta.items(), key=str)), toc,
                          page.content or "")
            hit = _INDEXED.get(key)
            if hit is not None:
                _entries.extend(copy.deepcopy(hit))
                STATS["index_reused"] += 1
                return
            n = len(_entries)
            _original(page)
            STATS["indexed"] += 1
            _remember(_INDEXED, key, copy.deepcopy(_entries[n:]))

        index.add_entry_from_context = add


def _walk(toc):
    for item in toc or ():
        yield item
        yield from _walk(getattr(item, "children", ()))
