"""The values: addresses, C socket addresses, errors, strict checks of options, the option table, and the small helpers every wing shares. Values do no I/O."""
