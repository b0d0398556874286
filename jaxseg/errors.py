"""The base of every error a user can fix: main.py prints it as one line instead of a traceback."""


class UserError(ValueError):
  """A mistake in an input, option, file or environment, with what to do about it.

  Attributes:
    exit_code: the process exit code main.py returns for it (2: bad input; 1: a run that had to stop).
  """
  exit_code = 2


class ConfigError(UserError):
  """A config value, config file or workdir that cannot work."""


class DatasetError(UserError):
  """Data that cannot be used, with the file or option to fix."""
