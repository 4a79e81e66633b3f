"""to_socket(): janus_net makes the socket, an async framework (asyncio, trio...) serves on it.

``to_socket()`` gives a plain `socket.socket` (``type(s) is socket.socket``, which
trio insists on) and leaves the janus_net object closed and detached. Each test
is a real round trip through the framework's own API on the handed-over socket,
with a stdlib client or the framework's own as the peer.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import cast

import anyio
import anyio.abc
import trio

import janus_net as jn


def _handed_over(owner: jn.Server | jn.Socket) -> socket.socket:
    fd = owner.fileno()
    sock = owner.to_socket()
    assert type(sock) is socket.socket
    assert sock.fileno() == fd
    assert owner.closed and owner.fileno() == -1
    return sock


def test_asyncio_start_server() -> None:
    srv = jn.listen("127.0.0.1:0")
    port = srv.address.port
    sock = _handed_over(srv)

    async def echo_upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> bytes:
        server = await asyncio.start_server(echo_upper, sock=sock)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"through asyncio\n")
            reply = await reader.read()
            writer.close()
            await writer.wait_closed()
        return reply

    assert asyncio.run(asyncio.wait_for(main(), 30)) == b"THROUGH ASYNCIO\n"


def test_asyncio_accepted_stream() -> None:
    # An accepted janus_net Stream handed over too: asyncio.open_connection(sock=...).
    with jn.listen("127.0.0.1:0") as srv, socket.create_connection(("127.0.0.1", srv.address.port), 30) as client:
        stream = srv.accept().to_socket()
        assert type(stream) is socket.socket

        async def main() -> bytes:
            reader, writer = await asyncio.open_connection(sock=stream)
            writer.write(b"from asyncio")
            await writer.drain()
            line = await reader.readline()
            writer.close()
            await writer.wait_closed()
            return line

        client.sendall(b"from the client\n")
        assert asyncio.run(asyncio.wait_for(main(), 30)) == b"from the client\n"
        assert client.recv(100) == b"from asyncio"


def test_trio_socket_listener() -> None:
    srv = jn.listen("127.0.0.1:0")
    port = srv.address.port
    sock = _handed_over(srv)

    async def main() -> bytes:
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        async with listener:

            async def serve_one() -> None:
                async with await listener.accept() as stream:
                    await stream.send_all((await stream.receive_some(100)).upper())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve_one)
                async with await trio.open_tcp_stream("127.0.0.1", port) as client:
                    await client.send_all(b"through trio")
                    return await client.receive_some(100)
        raise AssertionError("unreachable")

    async def bounded() -> bytes:
        with trio.fail_after(30):
            return await main()

    assert trio.run(bounded) == b"THROUGH TRIO"


def test_anyio_socket_listener_from_socket() -> None:
    srv = jn.listen("127.0.0.1:0")
    port = srv.address.port
    sock = _handed_over(srv)

    async def main() -> bytes:
        listener = await anyio.abc.SocketListener.from_socket(sock)
        async with listener:

            async def serve_one() -> None:
                async with await listener.accept() as stream:
                    await stream.send((await stream.receive()).upper())

            async with anyio.create_task_group() as tg:
                tg.start_soon(serve_one)
                async with await anyio.connect_tcp("127.0.0.1", port) as client:
                    await client.send(b"through anyio")
                    return await client.receive()
        raise AssertionError("unreachable")

    async def bounded() -> bytes:
        with anyio.fail_after(30):
            return await main()

    assert anyio.run(bounded, backend="asyncio") == b"THROUGH ANYIO"
    # The same with anyio on trio: a second listener, a second hand-over.
    srv = jn.listen("127.0.0.1:0")
    port = srv.address.port
    sock = _handed_over(srv)
    assert anyio.run(bounded, backend="trio") == b"THROUGH ANYIO"


def test_asyncio_datagram_endpoint() -> None:
    udp = jn.bind("127.0.0.1:0")
    assert isinstance(udp.address, jn.Ip4Address)
    target = (udp.address.host, udp.address.port)
    sock = _handed_over(udp)

    class EchoUpper(asyncio.DatagramProtocol):
        transport: asyncio.DatagramTransport

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # The selector loop's datagram transport does not subclass DatagramTransport.
            self.transport = cast(asyncio.DatagramTransport, transport)

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(data.upper(), addr)

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(EchoUpper, sock=sock)
        try:
            # A blocking stdlib client in a thread (loop.sock_sendto is Python 3.11+).
            return await asyncio.to_thread(exchange)
        finally:
            transport.close()

    def exchange() -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(30)
            client.sendto(b"through a datagram endpoint", target)
            data, source = client.recvfrom(100)
            assert source == target
            return data

    assert asyncio.run(asyncio.wait_for(main(), 30)) == b"THROUGH A DATAGRAM ENDPOINT"


def test_to_socket_twice_names_to_socket_not_a_syscall_the_caller_never_made() -> None:
    # The second call names to_socket, not "EBADF (in getsockname)", a call the caller never made.
    with jn.listen("127.0.0.1:0") as srv, socket.create_connection(("127.0.0.1", srv.address.port), 30) as client:
        stream = srv.accept()
        udp = jn.bind("127.0.0.1:0")
        for owner in (stream, udp, srv):
            first = owner.to_socket()
            try:
                try:
                    owner.to_socket()
                except jn.SocketError.Unexpected as e:
                    assert e.syscall == "to_socket" and e.errno == errno.EBADF
                    assert "getsockname" not in str(e) and "handed over" in str(e)
                else:
                    raise AssertionError("a second to_socket() handed over a descriptor again")
            finally:
                first.close()
        client.close()
