"""argparse for the verbs: a parser that names the closest flags, and the one way a verb fails."""

from __future__ import annotations

import argparse
import difflib
import re
import sys


class Parser(argparse.ArgumentParser):
    """argparse with the closest flags named for one that does not exist."""

    def error(self, message: str):
        hint = ""
        unknown = re.search(r"unrecognized arguments: (.+)", message)
        if unknown:
            flags = [flag for action in self._actions for flag in action.option_strings]
            words = [w.split("=")[0] for w in unknown.group(1).split() if w.startswith("-")]
            close = dict.fromkeys(c for w in words for c in difflib.get_close_matches(w, flags, 3, 0.5))
            hint = f" Closest: {', '.join(close)}." if close else ""
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}.{hint}\n")


def fail(verb: str, error: object) -> int:
    print(f"bench-app {verb}: error: {error}", file=sys.stderr)
    return 2
