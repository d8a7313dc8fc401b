"""Provides the control plane: a host's API served on a UNIX socket, and the client of it.

`protocol` and `paths` are shared by both ends and use only the standard library; `server`
runs in the host's process; `client` (and the CLI verbs on top of it) import neither anyio
nor Textual, so that `tuisup ps` starts fast.
"""
