/* jn_wake.c -- wake pairs and the process's pid: what lets a close() or a cancel() reach a
 * thread blocked in poll, and what tells a forked child that a cell is its parent's.
 *
 * A wake pair is an eventfd (one fd for both ends; JN_HAS_EVENTFD, native/sys_eventfd_h.py)
 * or a pipe, close-on-exec and non-blocking, made on the first wait and signalled once
 * (never drained). An object's pair lives in its cell (struct jn_desc, jn_desc.c); a
 * Context's in an int[4] cell: read fd, write fd, cancelled, pid. Each cell records the
 * pid of the process that made it: in a forked child the pairs it inherited are the
 * parent's, and the first native call there takes the cell over (jn_waker_mine,
 * jn_desc_mine). Part of the shim's one translation unit (see janus_net.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <unistd.h>

#include "janus_net.h"

/* Claim a cell (exchange with -1) and close what it held: only one caller ever
   gets a number out of a cell, so only one closes it. */
static int jn_claim_close(int *cell)
{
    int fd = __atomic_exchange_n(cell, -1, __ATOMIC_SEQ_CST);
    if (fd < 0)
        return 0;
    return close(fd);
}

/* The pid of this process, kept by a pthread_atfork child handler rather than asked
   of the kernel each time: getpid() is a syscall (glibc stopped caching it in 2.25)
   and the check sits at the entry of every native call on a cell. Every fork() of
   libc runs the handler -- os.fork() and multiprocessing's fork start method included;
   a raw clone(2) that skips the handlers is not covered. */
static int jn_pid_cached = 0;
static pthread_once_t jn_pid_once = PTHREAD_ONCE_INIT;

static void jn_pid_after_fork(void)
{
    __atomic_store_n(&jn_pid_cached, (int)getpid(), __ATOMIC_SEQ_CST);
}

static void jn_pid_init(void)
{
    __atomic_store_n(&jn_pid_cached, (int)getpid(), __ATOMIC_SEQ_CST);
    pthread_atfork(NULL, NULL, jn_pid_after_fork);
}

static int jn_self_pid(void)
{
    int pid = __atomic_load_n(&jn_pid_cached, __ATOMIC_SEQ_CST);
    if (pid == 0) {
        pthread_once(&jn_pid_once, jn_pid_init);
        pid = __atomic_load_n(&jn_pid_cached, __ATOMIC_SEQ_CST);
    }
    return pid;
}

/* A cell's pid while one thread of a new process takes it over (see jn_desc_mine). */
#define JN_PID_BUSY (-1)

/* Claim the cell's pid for this process. Returns 1 if the caller must now reset what
   the cell inherited and then store `me` (another process made it: a fork), 0 if the
   cell is this process's already. Racing threads of the new process wait for the one
   that resets, so none of them uses a count that is about to be zeroed. */
static int jn_pid_claim(int *pid, int me)
{
    int seen = __atomic_load_n(pid, __ATOMIC_SEQ_CST);
    for (;;) {
        if (seen == me)
            return 0;
        if (seen == JN_PID_BUSY) {
            sched_yield();
            seen = __atomic_load_n(pid, __ATOMIC_SEQ_CST);
            continue;
        }
        if (__atomic_compare_exchange_n(pid, &seen, JN_PID_BUSY, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return 1;
    }
}

/* A close-on-exec, non-blocking pipe: pipe2 where the platform has it, else pipe and
   fcntl at once (a fork+exec by another thread in between could inherit it: the
   window every close-on-exec emulation has, DESIGN §8). */
static int jn_pipe_new(int *p)
{
#if defined(__linux__)
    return pipe2(p, O_CLOEXEC | O_NONBLOCK);
#else
    if (pipe(p) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
    }
    return 0;
#endif
}

/* Publish a new pair into pair[0] (read) and pair[1] (write, -1 for an eventfd) unless
   it holds one: then the new pair is closed again, so racing callers share one. */
static void jn_pair_publish(int *pair, int r, int w)
{
    int expected = -1;
    if (__atomic_compare_exchange_n(&pair[0], &expected, r, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        /* A pipe's write end follows the read end: a signal in between finds no
           write end and is lost (pipe platforms only; eventfd has one fd). */
        __atomic_store_n(&pair[1], w, __ATOMIC_SEQ_CST);
    } else {
        close(r);
        if (w >= 0)
            close(w);
    }
}

/* A readable-when-signalled pair: an eventfd (one fd for both ends) or a pipe,
   close-on-exec and non-blocking. */
static int jn_pair_new(int *pair)
{
    int p[2] = {-1, -1};
#if JN_HAS_EVENTFD
    p[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p[0] < 0)
        return -1;
#else
    if (jn_pipe_new(p) < 0)
        return -1;
#endif
    jn_pair_publish(pair, p[0], p[1]);
    return 0;
}

/* Make the pair readable; once readable it stays so (never drained). */
static int jn_waker_signal(int fd)
{
    if (fd < 0)
        return 0;
#if JN_HAS_EVENTFD
    uint64_t one = 1;
    return write(fd, &one, sizeof one) < 0 ? -1 : 0;
#else
    char one = 0;
    return write(fd, &one, 1) < 0 ? -1 : 0;
#endif
}

/* Signal whatever pair the cell holds (nothing if none yet). */
static int jn_pair_signal(int *pair)
{
    int r = __atomic_load_n(&pair[0], __ATOMIC_SEQ_CST);
    int w = __atomic_load_n(&pair[1], __ATOMIC_SEQ_CST);
    if (r < 0 || (!JN_HAS_EVENTFD && w < 0))
        return 0;
    return jn_waker_signal(w >= 0 ? w : r);
}

static void jn_waker_close(int *cell)
{
    int saved = errno;
    jn_claim_close(&cell[1]);
    jn_claim_close(&cell[0]);
    errno = saved;
}

/* A context's (or the wakeup pipe's) cell is [read fd, write fd, cancelled, pid]. In a
   process that did not make it -- a forked child -- the pair it holds is the parent's
   too: signalling it would wake the parent's waiters, and a wait on it would wake for
   the parent's cancel and then spin on a pair nobody here drains. So the child closes
   its copies, never signals them, and makes its own pair if it waits. */
static void jn_waker_mine(int *cell)
{
    int me = jn_self_pid();
    if (__atomic_load_n(&cell[3], __ATOMIC_SEQ_CST) == me || !jn_pid_claim(&cell[3], me))
        return;
    jn_waker_close(cell);
    __atomic_store_n(&cell[3], me, __ATOMIC_SEQ_CST);
}

/* The context's pair, made unless this process's copy of the cell has one. */
static int jn_waker_new(int *cell)
{
    jn_waker_mine(cell);
    if (__atomic_load_n(&cell[0], __ATOMIC_SEQ_CST) >= 0)
        return 0;
    return jn_pair_new(cell);
}

/* cancel(): signal the pair, if this process made one. Safe in a signal handler. */
static int jn_waker_signal_cell(int *cell)
{
    jn_waker_mine(cell);
    return jn_pair_signal(cell);
}

/* A context's cancel() sets the third before it signals, so native code can see a
   cancel without a wake fd (none is made until a call has to wait). */
static void jn_waker_cancel(int *cell)
{
    __atomic_store_n(&cell[2], 1, __ATOMIC_SEQ_CST);
}

/* The interpreter's signal wakeup fd that janus_net installs when the program has none
   (janus_net/wakeup.py): always a pipe, because CPython writes one byte per signal
   (an eventfd takes eight), both ends close-on-exec and non-blocking, as
   signal.set_wakeup_fd requires. */
static int jn_wakeup_new(int *cell)
{
    jn_waker_mine(cell);
    if (__atomic_load_n(&cell[0], __ATOMIC_SEQ_CST) >= 0)
        return 0;
    int p[2];
    if (jn_pipe_new(p) < 0)
        return -1;
    jn_pair_publish(cell, p[0], p[1]);
    return 0;
}

/* A wait that found the program's own wakeup fd put it back, but a signal in the
   instant between wrote its byte to janus_net's pipe: move such bytes to the program's
   fd, so its own loop still wakes. Nothing is retried or reported: a full or closed
   fd of the program already holds, or will never want, a wake. */
static int jn_wakeup_forward(int from, int to)
{
    char bytes[256];
    int saved = errno, moved = 0;
    ssize_t got;
    while ((got = read(from, bytes, sizeof bytes)) > 0) {
        if (to >= 0 && write(to, bytes, (size_t)got) > 0)  /* to < 0: only empty the pipe */
            moved += (int)got;
    }
    errno = saved;
    return moved;
}

/* Empty janus_net's own wakeup pipe after it woke a wait (the bytes are signal
   numbers nobody else reads: CPython's handlers run from their own flags). A read
   can only find the pipe empty already, which is what it is for. */
static void jn_wakeup_drain(int fd)
{
    char bytes[256];
    int saved = errno;
    while (read(fd, bytes, sizeof bytes) == (ssize_t)sizeof bytes)
        ;
    errno = saved;
}

/* poll(2) whose last entry is the interpreter's wakeup fd; janus_net's own (`drain`) is
   emptied when it fired. A raw call: -1 with errno as poll left it. */
static int jn_poll_wakeup(struct pollfd *fds, unsigned long n, int timeout_ms, int drain)
{
    int rc = poll(fds, (nfds_t)n, timeout_ms);
    if (rc > 0 && drain && n > 0 && (fds[n - 1].revents & POLLIN))
        jn_wakeup_drain(fds[n - 1].fd);
    return rc;
}
