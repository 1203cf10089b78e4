#!/usr/bin/env python3
"""Run mailrouter from a checkout: `python run.py run|check|explain|demo`."""
import sys

from mailrouter.commands.cli import main

if __name__ == "__main__":
    sys.exit(main())
