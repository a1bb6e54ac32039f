"""Pure helpers shared by the daemon and the CLI (standard library only: the CLI must start fast)."""
