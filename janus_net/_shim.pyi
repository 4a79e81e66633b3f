"""Typed facade of ``janus_net._shim``, the module cffi compiles from ``native/``.

The compiled module has no type information (cffi ships none), so without this
file every ``lib.X`` and ``ffi.Y`` would be ``Any`` and that ``Any`` would flow
into the package's signatures. Here each C function is typed as cffi calls it:
C integers are ``int``, pointers and structs are `CData`. Constants are ``int``.

Keep it in step with ``native/*_h.py`` (the libc API) and ``native/src/janus_net.h``
(janus_net's own C): tests/test_shim_stub.py fails when a name is declared on one
side and not the other.
"""

from collections.abc import Callable
from typing import Any, Literal, TypeAlias

class CData:
    """A cffi C object: a pointer, an array or a struct (``ffi.new``, ``ffi.cast``...).

    Field and item access is dynamic (the C declaration decides); it is ``Any``
    here and is turned into typed values at the one place each struct is read.
    """

    def __getattr__(self, name: str) -> Any: ...
    def __setattr__(self, name: str, value: Any) -> None: ...
    def __getitem__(self, index: int | slice) -> Any: ...
    def __setitem__(self, index: int | slice, value: Any) -> None: ...
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def __int__(self) -> int: ...
    def __add__(self, other: int) -> CData: ...
    def __sub__(self, other: int | CData) -> Any: ...
    def __enter__(self) -> CData: ...
    def __exit__(self, *exc_info: object) -> None: ...

class CType:
    """A C type as cffi describes it (``ffi.typeof``)."""

    kind: str
    cname: str
    item: CType
    length: int | None
    # None for a type that is not a struct or union; janus_net reads it on structs only.
    fields: list[tuple[str, CField]]
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class CField:
    """One field of a struct CType."""

    type: CType
    offset: int
    bitshift: int
    bitsize: int
    flags: int

class _Buffer:
    """``ffi.buffer(...)``: the raw bytes of a C object, sliceable and writable."""

    def __getitem__(self, index: slice) -> bytes: ...
    def __setitem__(self, index: slice, value: bytes | bytearray | memoryview) -> None: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int) -> memoryview: ...

_CDecl: TypeAlias = str | CType
_Bytes: TypeAlias = bytes | bytearray | memoryview

# Inside FFI the names CData and CType are its attributes; these aliases name the classes.
_CD: TypeAlias = CData
_CT: TypeAlias = CType

class _Allocator:
    def __call__(self, cdecl: _CDecl, init: Any = ...) -> CData: ...

class FFI:
    """The subset of ``cffi.FFI`` that janus_net uses."""

    CData: type[_CD]
    CType: type[_CT]
    NULL: _CD
    error: type[Exception]
    errno: int
    def new(self, cdecl: _CDecl, init: Any = ...) -> _CD: ...
    def new_allocator(
        self,
        alloc: Callable[[int], _CD] | None = ...,
        free: Callable[[_CD], None] | None = ...,
        should_clear_after_alloc: bool = ...,
    ) -> _Allocator: ...
    def cast(self, cdecl: _CDecl, value: _CD | int) -> _CD: ...
    def sizeof(self, cdecl: _CDecl | _CD) -> int: ...
    def alignof(self, cdecl: _CDecl) -> int: ...
    def offsetof(self, cdecl: _CDecl, *fields_or_indexes: str | int) -> int: ...
    def typeof(self, cdecl: _CDecl | _CD) -> _CT: ...
    def addressof(self, cdata: _CD, *fields_or_indexes: str | int) -> _CD: ...
    def buffer(self, cdata: _CD, size: int = ...) -> _Buffer: ...
    def from_buffer(self, python_buffer: _Bytes, require_writable: bool = ...) -> _CD: ...
    def memmove(self, dest: _CD | _Bytes, src: _CD | _Bytes, n: int) -> None: ...
    def unpack(self, cdata: _CD, length: int) -> bytes: ...
    def string(self, cdata: _CD, maxlen: int = ...) -> bytes: ...
    def getctype(self, cdecl: _CDecl, replace_with: str = ...) -> str: ...
    def release(self, cdata: _CD) -> None: ...
    def gc(self, cdata: _CD, destructor: Any, size: int = ...) -> _CD: ...

ffi: FFI

class _Lib:
    """``lib``: the C functions and constants declared in ``native/*_h.py`` and ``native/src/janus_net.h``."""

    # <sys/socket.h>
    AF_UNSPEC: int
    AF_INET: int
    AF_INET6: int
    AF_UNIX: int
    SOCK_STREAM: int
    SOCK_DGRAM: int
    SOCK_SEQPACKET: int
    SOCK_RAW: int
    SOCK_RDM: int
    SOL_SOCKET: int
    SO_REUSEADDR: int
    SO_BROADCAST: int
    SO_TYPE: int
    SO_ERROR: int
    SO_ACCEPTCONN: int
    SO_DOMAIN: int
    SO_RCVBUF: int
    SO_SNDBUF: int
    SHUT_RD: int
    SHUT_WR: int
    SHUT_RDWR: int
    MSG_DONTWAIT: int
    MSG_PEEK: int
    MSG_TRUNC: int
    MSG_WAITFORONE: int
    MSG_CTRUNC: int
    SCM_RIGHTS: int
    JN_SO_PASSCRED: int
    # Feature flags and stand-ins (0: the platform has no such thing).
    JN_HAS_SOCK_CLOEXEC: Literal[0, 1]
    JN_SOCK_CLOEXEC: int
    JN_SOCK_NONBLOCK: int
    JN_HAS_ACCEPT4: Literal[0, 1]
    JN_HAS_MMSG: Literal[0, 1]
    JN_MSG_NOSIGNAL: int
    JN_RX_SIZE: int
    JN_SEND_CHECK: int
    JN_SO_NOSIGPIPE: int
    JN_SO_REUSEPORT: int
    JN_MSG_CMSG_CLOEXEC: int
    JN_HAS_UCRED: Literal[0, 1]
    JN_SO_PEERCRED: int
    JN_SCM_CREDENTIALS: int
    JN_SCM_MAX_FD: int
    JN_SO_TIMESTAMPNS: int
    JN_SCM_TIMESTAMPNS: int
    JN_ACCEPT_INHERITS_O_NONBLOCK: Literal[0, 1]
    JN_HAS_SO_PROTOCOL: Literal[0, 1]
    JN_SO_PROTOCOL: int
    JN_HAS_SO_DOMAIN: Literal[0, 1]
    JN_SO_DOMAIN: int
    def socket(self, domain: int, type: int, protocol: int, /) -> int: ...
    def setsockopt(self, fd: int, level: int, option: int, value: CData, length: int, /) -> int: ...
    def getsockopt(self, fd: int, level: int, option: int, value: CData, length: CData, /) -> int: ...
    def bind(self, fd: int, addr: CData, length: int, /) -> int: ...
    def connect(self, fd: int, addr: CData, length: int, /) -> int: ...
    def listen(self, fd: int, backlog: int, /) -> int: ...
    def getsockname(self, fd: int, addr: CData, length: CData, /) -> int: ...
    def getpeername(self, fd: int, addr: CData, length: CData, /) -> int: ...
    def shutdown(self, fd: int, how: int, /) -> int: ...
    def sendmsg(self, fd: int, msg: CData, flags: int, /) -> int: ...
    def recvmsg(self, fd: int, msg: CData, flags: int, /) -> int: ...
    def jn_cmsg_space(self, length: int, /) -> int: ...
    def jn_cmsg_len(self, length: int, /) -> int: ...
    def jn_cmsg_firsthdr(self, msg: CData, /) -> CData: ...
    def jn_cmsg_nxthdr(self, msg: CData, cmsg: CData, /) -> CData: ...
    def jn_cmsg_data(self, cmsg: CData, /) -> CData: ...
    # <netinet/in.h>
    IPPROTO_IP: int
    IPPROTO_IPV6: int
    IPPROTO_TCP: int
    IPPROTO_UDP: int
    IPV6_V6ONLY: int
    JN_HAS_IP_PKTINFO: Literal[0, 1]
    JN_IP_PKTINFO: int
    JN_HAS_IPV6_PKTINFO: Literal[0, 1]
    JN_IPV6_RECVPKTINFO: int
    JN_IPV6_PKTINFO: int
    # <netinet/udp.h>
    JN_SOL_UDP: int
    JN_HAS_UDP_SEGMENT: Literal[0, 1]
    JN_UDP_SEGMENT: int
    JN_HAS_UDP_GRO: Literal[0, 1]
    JN_UDP_GRO: int
    JN_UDP_MAX_SEGMENTS: int
    JN_UDP_MAX_PAYLOAD_IP4: int
    JN_UDP_MAX_PAYLOAD_IP6: int
    # <arpa/inet.h>
    def htons(self, value: int, /) -> int: ...
    def ntohs(self, value: int, /) -> int: ...
    def htonl(self, value: int, /) -> int: ...
    def ntohl(self, value: int, /) -> int: ...
    # <sys/un.h>
    JN_HAS_ABSTRACT_UNIX: Literal[0, 1]
    # <fcntl.h>; fcntl is variadic: cffi wants the optional argument as a CData int.
    F_GETFD: int
    F_SETFD: int
    F_GETFL: int
    F_SETFL: int
    FD_CLOEXEC: int
    O_NONBLOCK: int
    O_RDONLY: int
    O_WRONLY: int
    O_CREAT: int
    O_NOFOLLOW: int
    O_CLOEXEC: int
    O_NOCTTY: int
    AT_FDCWD: int
    JN_O_PATH: int
    JN_AT_EMPTY_PATH: int
    def fcntl(self, fd: int, cmd: int, /, *arg: CData) -> int: ...
    def openat(self, dirfd: int, path: bytes, flags: int, /, *mode: CData) -> int: ...
    # <unistd.h>, <sys/eventfd.h>, and the owned-descriptor cell (struct jn_desc, native/src/jn_desc.c)
    JN_WAIT_CLOSED: int
    JN_WAIT_SIGNAL: int
    JN_CLOSE_FIRST: int
    JN_CLOSE_FINISH: int
    JN_HAS_EVENTFD: Literal[0, 1]
    jn_accept_gap_us: int  # a test hook (janus_net.testing.accept_gap), writable
    def close(self, fd: int, /) -> int: ...
    def unlink(self, path: bytes, /) -> int: ...
    def read(self, fd: int, buf: CData, size: int, /) -> int: ...
    def dup2(self, fd: int, target: int, /) -> int: ...
    def fchownat(self, dirfd: int, path: bytes, uid: int, gid: int, flags: int, /) -> int: ...
    def jn_desc_new(self, /) -> CData: ...
    def jn_desc_free(self, desc: CData, /) -> None: ...
    def jn_desc_hold(self, desc: CData, /) -> None: ...
    def jn_desc_unhold(self, desc: CData, /) -> None: ...
    def jn_desc_close(self, desc: CData, /) -> int: ...
    def jn_desc_finish(self, desc: CData, /) -> int: ...
    def jn_desc_close_now(self, desc: CData, /) -> int: ...
    def jn_desc_forget(self, desc: CData, /) -> None: ...
    def jn_desc_detach(self, desc: CData, /) -> int: ...
    def jn_desc_make_wake(self, desc: CData, /) -> int: ...
    def jn_desc_wait(
        self, desc: CData, events: int, ctx_fd: int, sig_fd: int, drain: bool, timeout_ms: int, /
    ) -> int: ...
    def jn_poll_wakeup(self, fds: CData, count: int, timeout_ms: int, drain: bool, /) -> int: ...
    def jn_desc_mine(self, desc: CData, /) -> None: ...
    def jn_desc_socket(self, desc: CData, domain: int, type: int, protocol: int, /) -> int: ...
    def jn_desc_sendmsg_rights(
        self, desc: CData, msg: CData, flags: int, cells: CData, slots: CData, count: int, closed_at: CData, /
    ) -> int: ...
    def jn_desc_openat(self, desc: CData, dirfd: int, path: bytes, flags: int, mode: int, /) -> int: ...
    def jn_desc_accept(
        self, desc: CData, addr: CData, length: CData, flags: int, into: CData, ctx_fd: int, /
    ) -> int: ...
    def jn_desc_kick(self, desc: CData, /) -> None: ...
    def jn_waker_cancel(self, cell: CData, /) -> None: ...
    def jn_desc_adopt(self, desc: CData, fd: int, /) -> int: ...
    def jn_desc_take(self, desc: CData, slot: CData, /) -> int: ...
    def jn_desc_sendto(
        self, desc: CData, data: CData | bytes, size: int, flags: int, addr: CData, length: int, /
    ) -> int: ...
    def jn_desc_recvfrom(
        self, desc: CData, buf: CData, size: int, flags: int, addr: CData, length: CData, /
    ) -> int: ...
    def jn_desc_send(self, desc: CData, data: CData, size: int, flags: int, /) -> int: ...
    def jn_desc_recv(self, desc: CData, buf: CData, size: int, flags: int, /) -> int: ...
    def jn_desc_receive(self, desc: CData, rx: CData, size: int, /) -> int: ...
    def jn_desc_send_ip(self, desc: CData, data: CData | bytes, size: int, addr: CData, /) -> int: ...
    def jn_desc_sendmmsg(self, desc: CData, msgs: CData, count: int, flags: int, /) -> int: ...
    def jn_desc_recvmmsg(self, desc: CData, msgs: CData, count: int, flags: int, /) -> int: ...
    def jn_desc_shutdown(self, desc: CData, how: int, /) -> int: ...
    def jn_desc_sendmsg(self, desc: CData, msg: CData, flags: int, /) -> int: ...
    def jn_desc_recvmsg(self, desc: CData, msg: CData, flags: int, /) -> int: ...
    def jn_desc_getsockopt(self, desc: CData, level: int, option: int, value: CData, length: CData, /) -> int: ...
    def jn_waker_new(self, cell: CData, /) -> int: ...
    def jn_waker_signal_cell(self, cell: CData, /) -> int: ...
    def jn_waker_close(self, cell: CData, /) -> None: ...
    def jn_wakeup_new(self, cell: CData, /) -> int: ...
    def jn_wakeup_forward(self, read_end: int, to_fd: int, /) -> int: ...
    def jn_self_pid(self, /) -> int: ...
    # <sys/stat.h>
    S_IFMT: int
    S_IFSOCK: int
    S_IFREG: int
    S_IFDIR: int
    S_IFIFO: int
    S_IFCHR: int
    S_IFBLK: int
    S_IFLNK: int
    def fchmod(self, fd: int, mode: int, /) -> int: ...
    def fstat(self, fd: int, buf: CData, /) -> int: ...
    def chmod(self, path: bytes, mode: int, /) -> int: ...
    def lstat(self, path: bytes, buf: CData, /) -> int: ...
    # <net/if.h>
    IF_NAMESIZE: int
    def if_nametoindex(self, name: bytes | CData, /) -> int: ...
    def if_indextoname(self, index: int, name: CData, /) -> CData: ...
    # <poll.h>
    POLLIN: int
    POLLOUT: int
    POLLERR: int
    POLLHUP: int
    POLLNVAL: int
    def poll(self, fds: CData, count: int, timeout_ms: int, /) -> int: ...
    # <sys/file.h>
    LOCK_EX: int
    LOCK_NB: int
    LOCK_UN: int
    def flock(self, fd: int, operation: int, /) -> int: ...
    # <linux/sock_diag.h>, <linux/unix_diag.h>
    JN_HAS_UNIX_DIAG: Literal[0, 1]
    JN_AF_NETLINK: int
    JN_NETLINK_SOCK_DIAG: int
    JN_UDIAG_REQUEST_SIZE: int
    JN_UDIAG_MORE: int
    JN_UDIAG_FOUND: int
    JN_UDIAG_DONE: int
    JN_UDIAG_ERROR: int
    def jn_udiag_request(self, buf: CData, socket_ino: int, dump: int, /) -> int: ...
    def jn_udiag_scan(
        self,
        buf: CData,
        length: int,
        want_ino: int,
        want_dev: int,
        any: int,
        vfs_ino: CData,
        vfs_dev: CData,
        error: CData,
        /,
    ) -> int: ...

    # Landlock (native/linux_landlock_h.py, native/src/jn_landlock.c)
    JN_HAS_LANDLOCK: Literal[0, 1]
    JN_LANDLOCK_NET_FROM_HEADER: Literal[0, 1]
    JN_LANDLOCK_CREATE_RULESET_VERSION: int
    JN_LANDLOCK_RULE_NET_PORT: int
    JN_LANDLOCK_ACCESS_NET_BIND_TCP: int
    JN_LANDLOCK_RESTRICT_SELF_TSYNC: int
    JN_PR_SET_NO_NEW_PRIVS: int
    def jn_landlock_create_ruleset(self, desc: CData, attr: CData, size: int, flags: int, /) -> int: ...
    def jn_landlock_add_net_port_rule(self, ruleset: int, attr: CData, /) -> int: ...
    def jn_landlock_restrict_self(self, ruleset: int, flags: int, /) -> int: ...
    def jn_set_no_new_privs(self) -> int: ...
    # network namespaces (native/sched_h.py, native/src/jn_netns.c)
    JN_HAS_SETNS: Literal[0, 1]
    JN_CLONE_NEWNET: int
    JN_HAS_NS_GET_NSTYPE: Literal[0, 1]
    def jn_open_namespace(self, path: bytes, /) -> int: ...
    def jn_ns_get_nstype(self, fd: int, /) -> int: ...
    def jn_setns(self, fd: int, nstype: int, /) -> int: ...
    # server socket options (native/linux_sockopts_h.py); 0 where the platform lacks one
    JN_IP_FREEBIND: int
    JN_IPV6_FREEBIND: int
    JN_IP_TRANSPARENT: int
    JN_IPV6_TRANSPARENT: int
    JN_SO_BINDTODEVICE: int
    JN_TCP_FASTOPEN: int
    JN_TCP_DEFER_ACCEPT: int
    JN_SO_INCOMING_CPU: int
    JN_SO_ATTACH_REUSEPORT_CBPF: int
    JN_HAS_CBPF: Literal[0, 1]
    JN_BPF_LD: int
    JN_BPF_W: int
    JN_BPF_ABS: int
    JN_BPF_RET: int
    JN_BPF_A: int
    JN_SKF_AD_OFF: int
    JN_SKF_AD_CPU: int
    # the seccomp filter beside the Landlock ruleset (native/linux_seccomp_h.py, native/src/jn_seccomp.c);
    # -1: no such syscall
    JN_HAS_SECCOMP: Literal[0, 1]
    JN_SECCOMP_AUDIT_ARCH: int
    JN_SECCOMP_X32_SYSCALL_BIT: int
    JN_SECCOMP_NR_SOCKET: int
    JN_SECCOMP_NR_SOCKETCALL: int
    JN_SECCOMP_NR_IO_URING_SETUP: int
    JN_SECCOMP_SYS_SOCKET: int
    JN_IPPROTO_MPTCP: int
    JN_IPPROTO_SMC: int
    JN_AF_SMC: int
    JN_SECCOMP_DATA_NR: int
    JN_SECCOMP_DATA_ARCH: int
    JN_SECCOMP_DATA_ARG0_LO: int
    JN_SECCOMP_DATA_ARG2_LO: int
    JN_SECCOMP_RET_ALLOW: int
    JN_SECCOMP_RET_ERRNO: int
    JN_SECCOMP_RET_DATA: int
    JN_SECCOMP_SET_MODE_FILTER: int
    JN_SECCOMP_GET_ACTION_AVAIL: int
    JN_SECCOMP_FILTER_FLAG_TSYNC: int
    JN_BPF_JMP: int
    JN_BPF_JEQ: int
    JN_BPF_JGE: int
    JN_BPF_K: int
    def jn_seccomp_action_avail(self, action: int, /) -> int: ...
    def jn_seccomp_set_filter(self, flags: int, prog: CData, /) -> int: ...
    # <signal.h>, <sys/wait.h>, random bytes, jn_spawn and the process cells (native/src/jn_spawn.c, jn_process.c)
    WNOHANG: int
    def kill(self, pid: int, signum: int, /) -> int: ...
    def waitpid(self, pid: int, status: CData, options: int, /) -> int: ...
    def jn_spawn(
        self,
        pid: CData,
        path: bytes,
        argv: CData,
        envp: CData,
        dup_from: CData,
        dup_to: CData,
        ndup: int,
        sigdef: CData,
        nsigdef: int,
        pdeathsig: int,
        /,
    ) -> int: ...
    def jn_random(self, buf: CData, size: int, /) -> int: ...
    def jn_desc_pipe(self, read_end: CData, write_end: CData, /) -> int: ...
    def jn_desc_dup_above(self, into: CData, fd: int, low: int, /) -> int: ...
    # native/src/jn_steps.c: the listen/bind step sequence (a native fast path, DESIGN §2)
    JN_STEPS_MAX_OPTS: int
    def jn_steps(self, plan: CData, io: CData, sa: CData, salen: int, start: int, stop: int, /) -> int: ...
    # native/src/jn_control.c: closing received descriptors; RLIMIT_NOFILE (<sys/resource.h>)
    JN_RIGHTS_CONTROL_SIZE: int
    def jn_rights_close(self, control: CData, /) -> None: ...
    RLIMIT_NOFILE: int
    def getrlimit(self, resource: int, limit: CData, /) -> int: ...
    def jn_slots_close(self, slots: CData, count: int, /) -> int: ...

lib: _Lib
