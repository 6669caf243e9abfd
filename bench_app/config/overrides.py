"""Values written into Hydra's override grammar (`key=value` on a command line or in reproduce.sh).

Hydra reads `key=value` with its own lexer: spaces, quotes, `$`, `=`, commas, brackets and non-ASCII text
need a quoted value. `quote_value` writes any string so that Hydra reads it back unchanged, interpolation
included (`${` stays literal).
"""

from __future__ import annotations

import re

# A run of backslashes that stands before a quote or at the end: Hydra halves such runs in quoted values.
_BACKSLASHES_BEFORE_QUOTE = re.compile(r"(\\+)(?='|$)")
_BACKSLASHES_BEFORE_INTERPOLATION = re.compile(r"(\\*)\$\{")


def quote_body(value: str) -> str:
    """The inside of a single-quoted Hydra value (without the quotes)."""
    body = _BACKSLASHES_BEFORE_QUOTE.sub(lambda m: m.group(1) * 2, value)
    # OmegaConf: `\${` is a literal `${`; backslashes right before it are escaped first.
    body = _BACKSLASHES_BEFORE_INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", body)
    return body.replace("'", "\\'")


def quote_value(value: str) -> str:
    """A single-quoted Hydra value that reads back as `value`."""
    return f"'{quote_body(value)}'"


def override(key: str, value: str) -> str:
    return f"{key}={quote_value(value)}"
