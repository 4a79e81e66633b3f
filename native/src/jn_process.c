/* jn_process.c -- native calls that put the descriptors `janus-net run` makes into owned cells (struct jn_desc).
 *
 * The supervisor's wake pipe and its copies of the sockets it passes live in cells
 * from the instant the kernel returns them, like every other descriptor janus_net
 * opens (jn_desc.c): no Python bytecode ever holds a number no clean-up
 * path can see. Raw calls (DESIGN section 2): -1 with errno on failure, nothing retried.
 *
 * Part of the shim's one translation unit (see janus_net.h).
 */
#include <fcntl.h>
#include <unistd.h>

#include "janus_net.h"

static int jn_desc_pipe(struct jn_desc *r, struct jn_desc *w)
{
    int p[2];
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
#else
    /* No pipe2 (Darwin): the flags follow at once; a spawn in another thread could
       inherit the pair in between (janus-net run spawns from this thread only). */
    if (pipe(p) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
    }
#endif
    jn_desc_adopt(r, p[0]);
    jn_desc_adopt(w, p[1]);
    return 0;
}

static int jn_desc_dup_above(struct jn_desc *into, int fd, int low)
{
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, low);
    if (copy >= 0)
        jn_desc_adopt(into, copy);
    return copy;
}
