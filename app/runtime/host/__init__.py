"""The only code that touches the host."""
