"""Moved to ``deploy.fileio`` (the project's one I/O module). This re-export only keeps the two
modules that still import it here (``hwnas/train.py``, ``hwnas/search/evolution.py``) working
until they switch; delete it then. Do not add anything."""

from deploy.fileio import atomic_write_text  # noqa: F401
