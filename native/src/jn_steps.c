/* jn_steps.c -- a native fast path (DESIGN section 2): the listen/bind step sequence in one C call.
 *
 * socket -> setsockopt x n -> bind -> listen -> getsockname, as raw calls and nothing
 * more: no retry, no errno mapping, no policy. Steps are numbered in one flat space
 * so Python can run any contiguous stretch of them (one call for :core, one call per
 * checkpoint segment for :service, one step alone while the fault seam is armed) and
 * resume after EINTR from exactly the step that failed:
 *
 *     0             socket (the fd is stored in io->fd before anything else happens)
 *     1 .. n        setsockopt of plan->opts[0 .. n-1]
 *     n + 1         bind
 *     n + 2         listen (nothing when plan->backlog < 0: a bound, not listening, socket)
 *     n + 3         getsockname (into io->name / io->namelen; io->port: see below)
 *     n + 4         the end
 *
 * jn_steps(plan, io, sa, salen, start, stop) runs steps start .. stop-1 and returns
 * 0 with io->at == stop, or -1 with io->at == the failing step and errno as the
 * kernel left it (EINTR included). A negative start means "from io->at": calling
 * again with the same arguments after a failure resumes at the failed step, which
 * is what the one retry loop does on EINTR.
 *
 * A stock Context's deadline may be read natively at the checkpoints (DESIGN section 2):
 * when io->has_deadline is set, before a step that follows a checkpoint of DESIGN section 6
 * -- step 1 (checkpoint 2), step n+1 (checkpoints 3 and 4: the sockaddr is encoded
 * before the call) and step n+2 when there is a listen (checkpoint 5) -- and is not
 * the first step of this call, C compares CLOCK_MONOTONIC (Python's time.monotonic)
 * with io->deadline; once it has passed, C stops there without calling anything:
 * -1, io->at = that step, io->expired = 1. Python then runs the context's check(),
 * which raises its Timeout.
 *
 * io->port saves Python a decode: after getsockname it is the port the kernel
 * reported if the family and every other field (IPv4 address; IPv6 address, flow
 * label, scope id) equal those of the sockaddr that was bound, else -1 (then Python
 * decodes io->name in full). The same comparison as sockaddr.port_if_same_host.
 *
 * The Python driver is janus_net/steps.py; the loop that runs it, with its EINTR
 * and errno rules, is janus_net/syscalls.py (`steps`).
 *
 * Part of the shim's one translation unit (see janus_net.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "janus_net.h"

/* Whether a stock Context's deadline has passed (time.monotonic's clock). */
static int jn_steps_expired(const struct jn_steps_io *io)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        return 0; /* cannot tell: the next checkpoint in Python will */
    return (double)now.tv_sec + now.tv_nsec / 1e9 >= io->deadline;
}

/* The port in io->name when all else equals the bound sockaddr, else -1. */
static int jn_steps_same_port(const struct jn_steps_io *io, const struct sockaddr *sa, socklen_t salen)
{
    if (sa == NULL || io->name.ss_family != sa->sa_family)
        return -1;
    if (sa->sa_family == AF_INET && io->namelen >= sizeof(struct sockaddr_in)
        && salen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *got = (const struct sockaddr_in *)&io->name;
        const struct sockaddr_in *want = (const struct sockaddr_in *)sa;
        return got->sin_addr.s_addr == want->sin_addr.s_addr ? ntohs(got->sin_port) : -1;
    }
    if (sa->sa_family == AF_INET6 && io->namelen >= sizeof(struct sockaddr_in6)
        && salen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *got = (const struct sockaddr_in6 *)&io->name;
        const struct sockaddr_in6 *want = (const struct sockaddr_in6 *)sa;
        if (got->sin6_scope_id != want->sin6_scope_id || got->sin6_flowinfo != want->sin6_flowinfo
            || memcmp(&got->sin6_addr, &want->sin6_addr, sizeof got->sin6_addr) != 0)
            return -1;
        return ntohs(got->sin6_port);
    }
    return -1;
}

static int jn_steps(const struct jn_steps_plan *plan, struct jn_steps_io *io,
                    const struct sockaddr *sa, socklen_t salen, int start, int stop)
{
    int n = plan->nopts;
    if (n < 0 || n > JN_STEPS_MAX_OPTS)
        n = 0; /* the Python side never builds such a plan; never read past opts[] */
    if (start < 0)
        start = io->at; /* resume where the last call stopped */
    if (start < 0)
        start = 0;
    if (stop > n + 4)
        stop = n + 4;
    int fd = __atomic_load_n(&io->desc->fd, __ATOMIC_SEQ_CST);
    for (int k = start; k < stop; k++) {
        int rc;
        io->at = k;
        if (io->has_deadline && k > start && (k == 1 || k == n + 1 || (k == n + 2 && plan->backlog >= 0))
            && jn_steps_expired(io)) {
            io->expired = 1;
            errno = 0; /* never a stale EINTR: that would resume past the checkpoint */
            return -1; /* a checkpoint past the deadline: Python's check() decides */
        }
        if (k == 0) {
            rc = socket(plan->family, plan->type, plan->protocol);
            if (rc >= 0) {
                /* Owned by the caller's cell from here: nothing can lose it. */
                __atomic_store_n(&io->desc->fd, rc, __ATOMIC_SEQ_CST);
                fd = rc;
            }
        } else if (k <= n) {
            const struct jn_sockopt *o = &plan->opts[k - 1];
            rc = setsockopt(fd, o->level, o->name, &o->value, sizeof o->value);
        } else if (k == n + 1) {
            rc = bind(fd, sa, salen);
        } else if (k == n + 2) {
            rc = plan->backlog < 0 ? 0 : listen(fd, plan->backlog);
        } else {
            io->namelen = sizeof io->name;
            rc = getsockname(fd, (struct sockaddr *)&io->name, &io->namelen);
            io->port = rc < 0 ? -1 : jn_steps_same_port(io, sa, salen);
        }
        if (rc < 0)
            return -1; /* errno is the kernel's, EINTR included: Python decides */
    }
    io->at = stop;
    return 0;
}
