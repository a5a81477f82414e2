"""Rolling-upgrade compatibility harness for Coder's prebuild claim → agent reinit protocol."""

__version__ = "0.1.0"
