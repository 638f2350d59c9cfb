"""Errors a user can cause. The CLI prints these as one line and exits with code 2."""


class HwnasError(Exception):
    """Base for user-facing errors of the search side (bad arch, space, data, checkpoint)."""


class ArchError(HwnasError):
    """An architecture is malformed or outside its search space."""


class SpaceError(HwnasError):
    """A search-space definition is unknown or malformed."""


class DataError(HwnasError):
    """A dataset folder is missing, empty, or inconsistent."""


class CheckpointError(HwnasError):
    """A checkpoint is unreadable or belongs to another search space."""
