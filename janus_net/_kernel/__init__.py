"""The kernel door: the only code that enters the kernel, one module per area.

Every libc call that enters the kernel is made here, through the one retry loop
(`loop.retry`: call; on -1 read errno; EINTR runs the checkpoint and calls again;
any other errno is looked up in that syscall's table), and each syscall brings only
its table: a `loop.Syscall`, errno -> `SocketError` member, with its bug rows as errno
-> reason. A table sits beside the wrapper that uses it, in the module of its area;
`tables.TABLES` gathers them for the fault seam (`janus_net.testing`) and the tests.

Upper wings import the module of the area they need, and call through its name, so
that a call says where it lives::

    from janus_net._kernel import cells, cell_io, sockets

    desc = cells.new_desc()
    fd = sockets.socket(desc, family, type_, 0, checkpoint)

The rooms, from the loop out:

============== ==============================================================
loop           `Syscall`, `retry`, `after_failure`, `WOULD_BLOCK`; shared reasons
tables         `TABLES` (every table, gathered once), `bug_rows_markdown`
cells          an owned descriptor's cell: made, filled, closed once, handed over
owners         who holds which fd: the registry the adoption door asks
sockets        socket (the one), bind, listen, names, connect, shutdown
socket_options setsockopt / getsockopt, with the table of each kind of caller
flags          fcntl: close-on-exec, O_NONBLOCK, the access mode
cell_io        accept, send, receive on owned cells (the first attempts)
waking         poll on a socket and its wake fds; the wake fds themselves
control        message headers built; control buffers read under one rule
step_sequence  listen/bind's raw calls as one native call, driven by the loop
files          open, fstat, lstat, unlink, chmod, fchown, flock, unix_diag
confinement    Landlock, seccomp, no_new_privs, namespaces, RLIMIT_NOFILE
processes      pipe, dup, spawn, kill, waitpid, read, random bytes
============== ==============================================================

Nothing here imports a wing above the door (values, `errors`, `platform` and the
shim only); a fact the kernel must be asked for is asked here and handed up
(`platform.hand_up`). How to add a syscall: docs/architecture.md.
"""
