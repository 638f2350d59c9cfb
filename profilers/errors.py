class ProfilerError(Exception):
    """A backend is unavailable or a measurement failed; the message says which and why."""
