"""A Griffe extension for the docs site: the docstrings' Sphinx roles as links into the API reference.

deltanet's docstrings cross-reference with Sphinx roles (``:class:`~deltanet.losses.Loss```,
``:meth:`state_dict```), which Markdown would print as they are. Each becomes an optional autoref:
a link where the target is documented on the site, plain code where it is not (an optional reference
never fails the strict build). A ``~`` shows the last component only, as in Sphinx; a name without
a ``deltanet.`` prefix is looked up next to the object whose docstring holds it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`(?P<tilde>~?)(?P<target>[A-Za-z_][\w.]*)(?:\(\))?`")


def _scope(obj: griffe.Object) -> str:
    """Where a relative name is looked up: a class's own members, else the members of the object's parent."""
    if obj.is_class or obj.is_module or obj.parent is None:
        return obj.path
    return obj.parent.path


def convert(text: str, scope: str) -> str:
    def link(match: re.Match[str]) -> str:
        target = match["target"]
        shown = target.rsplit(".", 1)[-1] if match["tilde"] else target
        identifier = target if target.split(".", 1)[0] == "deltanet" else f"{scope}.{target}"
        return f'<autoref identifier="{identifier}" optional><code>{shown}</code></autoref>'

    return ROLE.sub(link, text)


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value, _scope(obj))
