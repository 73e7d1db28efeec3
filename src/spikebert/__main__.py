from spikebert.cli import main
import sys

sys.exit(main())
