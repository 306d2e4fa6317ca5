"""``python -m journey.cli``: the ``journey`` command."""

import sys

from journey.cli.main import main

sys.exit(main())
