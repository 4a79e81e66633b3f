"""The values: addresses, C socket addresses, errors, strict checks of options, the option table.

Also the small helpers every wing shares (escaping text for people, bounded caches, seconds).
Values do no I/O.
"""
