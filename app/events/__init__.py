"""The event store: the append-only log every piece of berth state is derived from."""
