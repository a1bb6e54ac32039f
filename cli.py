#!/usr/bin/env python3
"""berth's command-line client (and `daemon` to run the daemon). See `python cli.py help`."""
import sys

from app.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
