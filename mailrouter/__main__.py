import sys

from mailrouter.commands.cli import main

sys.exit(main())
