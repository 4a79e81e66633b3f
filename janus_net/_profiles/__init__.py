"""The profiles: how a socket comes to be.

listen, bind, connect, adoption, the address parser, options checked and applied, the
step sequence (plain and native), unix socket files.
"""
