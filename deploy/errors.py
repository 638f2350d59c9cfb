class ExportError(Exception):
    """An export failed; the message names the format and the cause."""
