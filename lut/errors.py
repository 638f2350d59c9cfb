class LUTError(Exception):
    """A latency table is unreadable, or does not fit the space/device/protocol it is used for."""
