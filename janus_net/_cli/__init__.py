"""The face: the janus-net command (its subcommands, flags, output, the stop-signal rule) and the demo."""
