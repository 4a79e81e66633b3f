/* jn_control.c -- control messages (native side of janus_net/control.py): closing received descriptors.
 *
 * ``jn_rights_close`` is the last resort of a receive buffer (its ffi.gc destructor),
 * for when an asynchronous exception cut the receiver's own explicit closing short.
 * ``jn_slots_close`` closes the descriptors of one received SCM_RIGHTS message: each
 * slot is emptied (an atomic exchange with -1) before its fd is closed, so a slot
 * that `jn_desc_take` moved into a cell meanwhile, or that an earlier call closed,
 * is never closed again. It is a raw call: errors of close(2) are not reported (the
 * descriptor is released either way on Linux) and errno is left as it was.
 *
 * Part of the shim's one translation unit (see janus_net.h); JN_SCM_MAX_FD is
 * native/sys_socket_h.py's.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "janus_net.h"

static const int JN_RIGHTS_CONTROL_SIZE = (int)CMSG_SPACE(sizeof(int) * JN_SCM_MAX_FD);

/* The backstop of a zeroed recvmsg control buffer (its ffi.gc destructor): close every
   descriptor an SCM_RIGHTS message left in it that nobody claimed (a claimed slot
   holds -1). The receiver's own paths close them explicitly (jn_slots_close) or claim
   them into cells; this runs only when that was cut short (an asynchronous exception
   inside the except handler), so a received descriptor can never outlive its buffer. The kernel's msg_controllen is
   not needed: past what it wrote the buffer is still zero (cmsg_len 0 ends the walk). */
static void jn_rights_close(char *control)
{
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_control = control;
    m.msg_controllen = JN_RIGHTS_CONTROL_SIZE;
    int saved = errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_len < CMSG_LEN(0) || (char *)c + c->cmsg_len > control + JN_RIGHTS_CONTROL_SIZE)
            break;
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int *slots = (int *)CMSG_DATA(c);
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd = __atomic_exchange_n(&slots[i], -1, __ATOMIC_SEQ_CST);
            if (fd >= 0)
                close(fd);
        }
    }
    errno = saved;
}

static int jn_slots_close(int *slots, int n)
{
    int saved = errno;
    int closed = 0;
    for (int i = 0; i < n; i++) {
        int fd = __atomic_exchange_n(&slots[i], -1, __ATOMIC_SEQ_CST);
        if (fd >= 0) {
            close(fd);
            closed++;
        }
    }
    errno = saved;
    return closed;
}
