"""``python -m janus_net.layout``: the ``janus-net layout`` command (same output, same error contract)."""

import sys

from janus_net._cli import main

sys.exit(main(["layout", *sys.argv[1:]]))
