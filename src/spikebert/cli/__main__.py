import sys

from spikebert.cli import main

sys.exit(main())
