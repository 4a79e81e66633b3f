"""The one-minute proof: a listen / connect / accept round trip with a stdlib client."""

from __future__ import annotations

import socket

import janus_net as jn


def test_tcp_round_trip_on_loopback() -> None:
    with jn.listen("127.0.0.1:0") as server:
        assert isinstance(server.address, jn.Ip4Address)
        assert server.address.port != 0
        with (
            socket.create_connection((server.address.host, server.address.port)) as client,
            server.accept() as stream,
        ):
            client.sendall(b"ping")
            assert stream.read(4) == b"ping"
            stream.write_all(b"pong")
            assert client.recv(4) == b"pong"
            assert stream.address == jn.parse_address("{}:{}".format(*client.getsockname()))
