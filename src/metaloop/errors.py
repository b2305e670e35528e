"""Errors caused by the user's input; the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """Bad input: a preset, config key, run directory, checkpoint or data the user supplied."""


class ConfigError(UserError):
    pass


class CheckpointError(UserError):
    pass


class DivergedError(UserError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""
