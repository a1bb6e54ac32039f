"""The real world: host facts now; runc, monitor, overlay layers, networking as later issues add them."""
