"""``python -m janus_net`` is the ``janus-net`` command."""

import sys

from janus_net._cli import main

sys.exit(main())
