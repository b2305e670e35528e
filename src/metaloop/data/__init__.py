"""Datasets on disk: download, checksum, decode once, cache. Task distributions over them live in tasks/."""
