import sys

from pleno.cli import main

sys.exit(main())
