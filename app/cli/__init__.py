"""The berth CLI. Standard library only, and nothing from the daemon side: it must start fast."""
