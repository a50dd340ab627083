"""Markdown helpers shared by the report's page builders."""
from __future__ import annotations

import re

_SUBSCRIPT = re.compile(r"(?<![A-Za-z0-9_$\\])([A-Za-zα-ωΑ-Ω])_([A-Za-z0-9]{1,3})(?![A-Za-z0-9_])")


def subscripts(text: str) -> str:
    """Prose such as "q_l" or "σ_w²" as math ($q_{l}$, $σ_{w}$²), so no literal underscore reaches the page."""
    return _SUBSCRIPT.sub(lambda m: f"${m.group(1)}_{{{m.group(2)}}}$", text)
