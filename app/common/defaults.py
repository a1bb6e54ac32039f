"""Default addresses and paths, shared by the daemon and the CLI."""

DEFAULT_HOST = "unix:///run/berth.sock"
DEFAULT_DATA_ROOT = "/var/lib/berth"
