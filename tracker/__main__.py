import sys

from tracker.app.cli import main

sys.exit(main())
