"""Provides `tuisup export`: a manifest written for Docker Compose, Kubernetes or systemd.

Each target has a module that turns a `Source` (the manifest and the keys its file
writes) into an `Export`: the files, and a `Loss` for every setting the target cannot
express, which the command prints one a line instead of dropping it. `common` holds what
the targets share: the losses, the probes that stand in for tcp and http health checks,
and the command a Python target runs as.
"""

from tuisup.export.common import Export, Loss, Source, read_source

__all__ = ["Export", "Loss", "Source", "read_source"]
