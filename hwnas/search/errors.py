"""The search's user-facing error (printed by the CLI as one line, exit 2)."""

from hwnas.errors import HwnasError


class SearchError(HwnasError):
    """Impossible search settings (e.g. a latency cap below the fastest model) or a mismatched resume."""
