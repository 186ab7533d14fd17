import sys

from femlm.cli import main

sys.exit(main())
