"""User-facing errors: printed as one paragraph, no traceback, non-zero exit."""


class UserError(Exception):
    """A mistake in the configuration or the command line, explained to the user."""

    exit_code = 2
