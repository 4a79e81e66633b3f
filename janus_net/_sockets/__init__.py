"""The sockets: what a socket does once it exists.

The owner, Server, Stream, the datagram Socket, batching, segments, ancillary data.
"""
