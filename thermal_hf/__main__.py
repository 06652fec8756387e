import sys

from thermal_hf.cli import main

sys.exit(main())
