/* jn_desc.c -- the owned-descriptor cell (struct jn_desc, janus_net.h) and the calls on it.
 *
 * A cell is where every descriptor janus_net owns lives, from the instant the kernel
 * hands it over until the one close: the calls below write a new fd into it before they
 * return (so no Python bytecode ever holds a number that no cleanup path can see), count
 * the calls using it, and close it exactly once, by whichever side -- close(), the last
 * call in flight, or the cell's own garbage collection -- claims it first (an atomic
 * exchange with -1).
 *
 * They are raw calls in the sense of DESIGN section 2: they never retry and never map an
 * errno; on failure they return -1 with errno set, and Python's one retry loop decides.
 * The in-flight count is taken and given back inside each call, so no Python bytecode
 * runs while it is held and an exception can never lose one.
 *
 * Each cell records the pid of the process that made it: in a forked child the counts
 * and the wake pair it inherited are the parent's, and the first native call there takes
 * the cell over (jn_desc_mine). Part of the shim's one translation unit, after jn_wake.c
 * (see janus_net.h); jn_accept4, jn_sendmmsg and jn_recvmmsg are the portable stand-ins
 * of native/sys_socket_h.py.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "janus_net.h"

static struct jn_desc *jn_desc_new(void)
{
    struct jn_desc *d = calloc(1, sizeof *d);
    if (d != NULL) {
        d->fd = d->wake[0] = d->wake[1] = -1;
        d->refs = 1;  /* the ffi.gc wrapper's, given back by jn_desc_free */
        d->pid = jn_self_pid();
    }
    return d;
}

/* The cell as this process sees it. In a forked child the counts it inherited belong
   to the parent's threads, which the child does not have (only the forking thread
   lives on, and it is in no native call): the in-flight count, the accept flag and
   the acceptor are zeroed, so the child's close() closes its copy of the fd at once
   (an inherited count kept it open for ever: a dead listener kept accepting in the
   child). The wake pair is the parent's too: the child closes its copies without
   signalling them (a signal would wake the parent's waiters, which never drain it:
   they would spin), and makes its own pair if it waits. Called first by every
   native function that uses a cell's fd, counts or pair. */
static void jn_desc_mine(struct jn_desc *d)
{
    int me = jn_self_pid();
    if (__atomic_load_n(&d->pid, __ATOMIC_SEQ_CST) == me || !jn_pid_claim(&d->pid, me))
        return;
    int saved = errno;
    __atomic_store_n(&d->inflight, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&d->accepting, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&d->acceptor_state, 0, __ATOMIC_SEQ_CST);
    jn_waker_close(d->wake);
    __atomic_store_n(&d->pid, me, __ATOMIC_SEQ_CST);
    errno = saved;
}

/* Close everything the cell still holds; returns close(fd)'s result (0 if it held none). */
static int jn_desc_finish(struct jn_desc *d)
{
    int rc = jn_claim_close(&d->fd);
    int saved = errno;
    jn_waker_close(d->wake);
    errno = saved;
    return rc;
}

/* The cell's garbage collection (cffi's ffi.gc): the backstop that closes a
   descriptor whose owner never came to exist or never got to close it. The memory
   goes only with the last reference: cffi runs this from the wrapper's tp_finalize,
   and in a reference cycle the garbage collector may run it before the owner's
   __del__, which still reads the cell. */
static void jn_desc_free(struct jn_desc *d)
{
    int saved = errno;
    if (__atomic_load_n(&d->refs, __ATOMIC_SEQ_CST) > 1 && !__atomic_load_n(&d->closing, __ATOMIC_SEQ_CST)
        && __atomic_load_n(&d->fd, __ATOMIC_SEQ_CST) >= 0)
        d->collected = 1;  /* an owner still to be finalized never closed it */
    jn_desc_finish(d);
    if (__atomic_sub_fetch(&d->refs, 1, __ATOMIC_SEQ_CST) == 0)
        free(d);
    errno = saved;
}

/* An owner keeps the cell's memory until its __del__ is done with it (jn_desc_unhold),
   whichever of the two the garbage collector finalizes first. */
static void jn_desc_hold(struct jn_desc *d)
{
    __atomic_add_fetch(&d->refs, 1, __ATOMIC_SEQ_CST);
}

/* Never closes anything: the memory goes last, after jn_desc_free closed the cell. */
static void jn_desc_unhold(struct jn_desc *d)
{
    if (__atomic_sub_fetch(&d->refs, 1, __ATOMIC_SEQ_CST) == 0)
        free(d);
}

/* A call begins using d->fd: -1 (EBADF) once the object is closing. */
static int jn_desc_enter(struct jn_desc *d)
{
    jn_desc_mine(d);
    __atomic_add_fetch(&d->inflight, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&d->closing, __ATOMIC_SEQ_CST)) {
        if (__atomic_sub_fetch(&d->inflight, 1, __ATOMIC_SEQ_CST) == 0)
            jn_desc_finish(d);
        errno = EBADF;
        return -1;
    }
    return __atomic_load_n(&d->fd, __ATOMIC_SEQ_CST);
}

/* The call is done with d->fd; the last one out of a closing object closes it. */
static void jn_desc_leave(struct jn_desc *d)
{
    if (__atomic_sub_fetch(&d->inflight, 1, __ATOMIC_SEQ_CST) == 0
        && __atomic_load_n(&d->closing, __ATOMIC_SEQ_CST)) {
        int saved = errno;
        jn_desc_finish(d);
        errno = saved;
    }
}

/* A thread can sleep inside accept(2) itself, out of reach of the wake fd: the
   description is blocking (shared with other processes, janus_net never changes its
   flags) and another holder took the connection between our readiness check and our
   accept -- the losers of every prefork thundering herd. Linux has no per-call
   non-blocking accept, so close() reaches such a thread with a signal: SIGURG (its
   default action is to ignore it, so a stray one harms nothing; Go's runtime uses it
   the same way), whose handler janus_net installs only where nobody else has one,
   without SA_RESTART, so accept(2) returns EINTR. acceptor_state: 0 no thread in
   accept, 1 one is (its id in acceptor), 2 a close() is signalling it (the thread
   waits to leave, so its id stays valid for pthread_kill). */
int jn_accept_gap_us = 0;
static int jn_kick_ready = 0;
static pthread_once_t jn_kick_once = PTHREAD_ONCE_INIT;

static void jn_kick_handler(int sig)
{
    (void)sig;  /* only there to make accept(2) return EINTR */
}

static void jn_kick_install(void)
{
    struct sigaction old, sa;
    if (sigaction(SIGURG, NULL, &old) != 0 || (old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
        return;  /* someone else's handler (or SIG_IGN): leave it, and never signal */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = jn_kick_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  /* no SA_RESTART */
    if (sigaction(SIGURG, &sa, NULL) == 0)
        __atomic_store_n(&jn_kick_ready, 1, __ATOMIC_SEQ_CST);
}

static int jn_kick_ours(void)
{
    struct sigaction cur;
    return __atomic_load_n(&jn_kick_ready, __ATOMIC_SEQ_CST) && sigaction(SIGURG, NULL, &cur) == 0
        && !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == jn_kick_handler;
}

/* Signal the thread inside accept(2) on d, if any, until it has left it (a signal
   that lands just before it enters the kernel is lost, so again every millisecond,
   for at most 200 ms). */
static void jn_desc_kick(struct jn_desc *d)
{
    jn_desc_mine(d);
    if (__atomic_load_n(&d->acceptor_state, __ATOMIC_SEQ_CST) == 0 || !jn_kick_ours())
        return;
    int saved = errno;
    for (int i = 0; i < 200; i++) {
        int in_accept = 1;
        if (!__atomic_compare_exchange_n(&d->acceptor_state, &in_accept, 2, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            break;  /* it left (0), or another close() is at it (2) */
        pthread_kill(d->acceptor, SIGURG);
        __atomic_store_n(&d->acceptor_state, 1, __ATOMIC_SEQ_CST);
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    errno = saved;
}

/* close(): mark closing and wake every waiter; never shutdown(), so other
   holders of a shared description notice nothing. Returns JN_CLOSE_FIRST if this
   call marked it, plus JN_CLOSE_FINISH if no call is in flight and the fd is still
   held: the caller then closes it with jn_desc_finish (the fault seam's close
   step). Otherwise the last call in flight closes it on its way out. */
static int jn_desc_close(struct jn_desc *d)
{
    int result = 0;
    jn_desc_mine(d);
    if (!__atomic_exchange_n(&d->closing, 1, __ATOMIC_SEQ_CST)) {
        result |= JN_CLOSE_FIRST;
        jn_pair_signal(d->wake);
        jn_desc_kick(d);
    }
    if (__atomic_load_n(&d->inflight, __ATOMIC_SEQ_CST) == 0 && __atomic_load_n(&d->fd, __ATOMIC_SEQ_CST) >= 0)
        result |= JN_CLOSE_FINISH;
    return result;
}

/* jn_desc_close, and when the fd falls to the caller, its close(2) right away
   (JN_CLOSE_FINISH then means "closed here"); for when no fault seam is armed.
   -1 with errno if close(2) failed (the cell has forgotten the fd either way). */
static int jn_desc_close_now(struct jn_desc *d)
{
    int state = jn_desc_close(d);
    if (state & JN_CLOSE_FINISH) {
        if (jn_desc_finish(d) < 0)
            return -1;
    }
    return state;
}

/* The cell forgets its fd without closing it: after close(2) failed (the number
   is released either way on Linux) or a test's fault seam stood in for it. */
static void jn_desc_forget(struct jn_desc *d)
{
    __atomic_store_n(&d->fd, -1, __ATOMIC_SEQ_CST);
}

/* Hand the descriptor over (to_socket): returns the fd, which the cell forgets,
   and marks the object closed. EBUSY while a call is in flight. */
static int jn_desc_detach(struct jn_desc *d)
{
    jn_desc_mine(d);
    if (__atomic_load_n(&d->inflight, __ATOMIC_SEQ_CST) != 0) {
        errno = EBUSY;
        return -1;
    }
    if (__atomic_exchange_n(&d->closing, 1, __ATOMIC_SEQ_CST)) {
        errno = EBADF;
        return -1;
    }
    jn_waker_close(d->wake);
    return __atomic_exchange_n(&d->fd, -1, __ATOMIC_SEQ_CST);
}

/* The object's own wake fd, made on the first wait (a second thread's is closed). */
static int jn_desc_make_wake(struct jn_desc *d)
{
    jn_desc_mine(d);
    __atomic_add_fetch(&d->inflight, 1, __ATOMIC_SEQ_CST);
    int rc = 0;
    if (__atomic_load_n(d->wake, __ATOMIC_SEQ_CST) < 0)
        rc = jn_pair_new(d->wake);
    int saved = errno;
    jn_desc_leave(d);  /* a close meanwhile: the last one out closes the pair too */
    errno = saved;
    return rc;
}

/* Wait for `events` on the socket, the object's wake fd, a context's wake fd (or -1)
   and the interpreter's signal wakeup fd (sig_fd, or -1; emptied when it fired and
   `drain` says it is janus_net's own). Returns the socket's revents, with
   JN_WAIT_CLOSED added when the object is closing and JN_WAIT_SIGNAL when sig_fd
   fired; -1 with errno on failure (EINTR included). */
static int jn_desc_wait(struct jn_desc *d, int events, int ctx_fd, int sig_fd, int drain, int timeout_ms)
{
    struct pollfd p[4];
    int fd = jn_desc_enter(d);
    if (fd < 0)
        return JN_WAIT_CLOSED;
    p[0].fd = fd;
    p[0].events = (short)events;
    p[1].fd = __atomic_load_n(d->wake, __ATOMIC_SEQ_CST);
    p[1].events = POLLIN;
    p[2].fd = ctx_fd;
    p[2].events = POLLIN;
    p[3].fd = sig_fd;
    p[3].events = POLLIN;
    for (int i = 0; i < 4; i++)
        p[i].revents = 0;
    int rc = jn_poll_wakeup(p, 4, timeout_ms, drain);
    int saved = errno;
    int closing = __atomic_load_n(&d->closing, __ATOMIC_SEQ_CST);
    jn_desc_leave(d);
    errno = saved;
    if (closing)
        return JN_WAIT_CLOSED;
    if (rc < 0)
        return -1;
    return p[0].revents | (p[3].revents ? JN_WAIT_SIGNAL : 0);
}

static int jn_desc_socket(struct jn_desc *d, int family, int type, int proto)
{
    int fd = socket(family, type, proto);
    if (fd >= 0)
        __atomic_store_n(&d->fd, fd, __ATOMIC_SEQ_CST);
    return fd;
}

/* openat(2) into the cell (a lock file, an O_PATH handle, a namespace): the same
   rule as a socket's, so an exception anywhere after it cannot leak the fd (nor the
   flock a lock file's fd holds). */
static int jn_desc_openat(struct jn_desc *d, int dirfd, const char *path, int flags, int mode)
{
    int fd = openat(dirfd, path, flags, (mode_t)mode);
    if (fd >= 0)
        __atomic_store_n(&d->fd, fd, __ATOMIC_SEQ_CST);
    return fd;
}

/* Take an inherited descriptor into the cell: the moment ownership passes. */
static int jn_desc_adopt(struct jn_desc *d, int fd)
{
    __atomic_store_n(&d->fd, fd, __ATOMIC_SEQ_CST);
    return fd;
}

/* Move a descriptor from a slot (a received SCM_RIGHTS entry) into the cell: the slot
   is emptied and the cell filled in one call, so the fd always has exactly one holder. */
static int jn_desc_take(struct jn_desc *d, int *slot)
{
    int fd = __atomic_exchange_n(slot, -1, __ATOMIC_SEQ_CST);
    if (fd >= 0)
        __atomic_store_n(&d->fd, fd, __ATOMIC_SEQ_CST);
    return fd;
}

/* One accept, never a blocking one this process's other threads could lose to:
   attempts are serialised per object (EAGAIN while another thread is accepting:
   its accept is about to take the queued connection, so the caller polls again),
   and accept runs only when poll says a connection is there (else EAGAIN). A listener
   that was shut down (POLLHUP, nothing queued) answers EINVAL, as accept would.
   The new fd is written into `out` before returning. flags < 0: plain accept(). */
static int jn_desc_accept(struct jn_desc *d, struct sockaddr *sa, socklen_t *len, int flags, struct jn_desc *out,
                          int *ctx_cell)
{
    int fd = jn_desc_enter(d);
    if (fd < 0)
        return -1;
    int idle = 0;
    if (!__atomic_compare_exchange_n(&d->accepting, &idle, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        jn_desc_leave(d);
        errno = EAGAIN;
        return -1;
    }
    struct pollfd p = {fd, POLLIN, 0};
    int rc = poll(&p, 1, 0);
    if (rc == 0) {
        errno = EAGAIN;
        rc = -1;
    } else if (rc > 0 && !(p.revents & POLLIN) && (p.revents & POLLHUP)) {
        errno = EINVAL;
        rc = -1;
    } else if (rc > 0) {
        pthread_once(&jn_kick_once, jn_kick_install);
        if (jn_accept_gap_us > 0) {
            struct timespec gap = {jn_accept_gap_us / 1000000, (jn_accept_gap_us % 1000000) * 1000L};
            nanosleep(&gap, NULL);
        }
        d->acceptor = pthread_self();
        __atomic_store_n(&d->acceptor_state, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&d->closing, __ATOMIC_SEQ_CST)
            || (ctx_cell != NULL && __atomic_load_n(&ctx_cell[2], __ATOMIC_SEQ_CST))) {
            /* Closed, or the context cancelled, meanwhile: the wait reports it. Checked
               after acceptor_state is set, and close()/cancel() mark before they kick,
               so either this sees the mark or the kick sees this thread. */
            errno = EAGAIN;
            rc = -1;
        } else {
            rc = flags < 0 ? accept(fd, sa, len) : jn_accept4(fd, sa, len, flags);
            if (rc >= 0)
                __atomic_store_n(&out->fd, rc, __ATOMIC_SEQ_CST);
        }
        int err = errno;
        int in_accept = 1;
        while (!__atomic_compare_exchange_n(&d->acceptor_state, &in_accept, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            in_accept = 1;  /* a close() is signalling this thread: wait until it is done */
            sched_yield();
        }
        /* Woken by close(): "would block", and the wait loop finds the object closed. */
        errno = rc < 0 && err == EINTR && __atomic_load_n(&d->closing, __ATOMIC_SEQ_CST) ? EAGAIN : err;
    }
    int saved = errno;
    __atomic_store_n(&d->accepting, 0, __ATOMIC_SEQ_CST);
    jn_desc_leave(d);
    errno = saved;
    return rc;
}

#define JN_DESC_CALL(type, expr) \
    int fd = jn_desc_enter(d); \
    if (fd < 0) \
        return -1; \
    type rc = (expr); \
    int saved = errno; \
    jn_desc_leave(d); \
    errno = saved; \
    return rc;

static ssize_t jn_desc_sendto(struct jn_desc *d, const void *b, size_t n, int f, const struct sockaddr *sa, socklen_t l)
{
    JN_DESC_CALL(ssize_t, sendto(fd, b, n, f, sa, l))
}

static ssize_t jn_desc_recvfrom(struct jn_desc *d, void *b, size_t n, int f, struct sockaddr *sa, socklen_t *l)
{
    JN_DESC_CALL(ssize_t, recvfrom(fd, b, n, f, sa, l))
}

static ssize_t jn_desc_send(struct jn_desc *d, const void *b, size_t n, int f)
{
    JN_DESC_CALL(ssize_t, send(fd, b, n, f))
}

static ssize_t jn_desc_recv(struct jn_desc *d, void *b, size_t n, int f)
{
    JN_DESC_CALL(ssize_t, recv(fd, b, n, f))
}

static int jn_desc_sendmmsg(struct jn_desc *d, struct mmsghdr *v, unsigned int n, int f)
{
    JN_DESC_CALL(int, jn_sendmmsg(fd, v, n, f))
}

static int jn_desc_recvmmsg(struct jn_desc *d, struct mmsghdr *v, unsigned int n, int f)
{
    JN_DESC_CALL(int, jn_recvmmsg(fd, v, n, f))
}

/* sendmsg/recvmsg with control messages (GSO, pktinfo, SCM_RIGHTS) and getsockopt on
   an owned descriptor: counted in flight like the calls above. */
static ssize_t jn_desc_sendmsg(struct jn_desc *d, const struct msghdr *m, int f)
{
    JN_DESC_CALL(ssize_t, sendmsg(fd, m, f))
}

/* sendmsg with SCM_RIGHTS for the sockets in cells[0..n-1]: each is counted in flight
   (and its fd written into slots[i]) for the length of the call, so a close() of one
   by another thread cannot free its number -- which could be reused by then -- while
   the kernel copies it to the receiver. A cell that is closing already stops the call
   before the syscall: -1 with EBADF and *closed_at = its index (else -1). */
static ssize_t jn_desc_sendmsg_rights(struct jn_desc *d, const struct msghdr *m, int f, struct jn_desc **cells,
                                      int *slots, int n, int *closed_at)
{
    ssize_t rc = -1;
    int pinned = 0;
    *closed_at = -1;
    for (; pinned < n; pinned++) {
        int fd = jn_desc_enter(cells[pinned]);
        if (fd < 0) {
            *closed_at = pinned;
            goto out;
        }
        slots[pinned] = fd;
    }
    rc = jn_desc_sendmsg(d, m, f);
out:;
    int saved = errno;
    for (int i = 0; i < pinned; i++)
        jn_desc_leave(cells[i]);
    errno = saved;
    return rc;
}

static ssize_t jn_desc_recvmsg(struct jn_desc *d, struct msghdr *m, int f)
{
    JN_DESC_CALL(ssize_t, recvmsg(fd, m, f))
}

static int jn_desc_getsockopt(struct jn_desc *d, int level, int name, void *v, socklen_t *l)
{
    JN_DESC_CALL(int, getsockopt(fd, level, name, v, l))
}

static int jn_desc_shutdown(struct jn_desc *d, int how)
{
    JN_DESC_CALL(int, shutdown(fd, how))
}
