"""`python -m mixpeek_infra`: the `mixpeek-infra` command line."""

import sys

from .cli import main

sys.exit(main())
