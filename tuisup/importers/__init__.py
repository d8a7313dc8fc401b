"""Provides `tuisup import`: a services.toml written from a Procfile or a compose file.

`procfile` and `compose` each read their format into an `Imported` (`model`): the services'
keys in manifest words, the comments that explain them, and a `Loss` for each setting
that tuisup cannot express. `command` writes it as a commented manifest with tomlkit and
checks it with the manifest loader before anything is written.
"""
