import sys

from zabpy.cli.main import main

sys.exit(main())
