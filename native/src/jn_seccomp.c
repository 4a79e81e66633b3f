/* jn_seccomp.c -- the two seccomp(2) calls behind the filter NetBind.enforce installs beside
 * its Landlock ruleset (the program itself is built in Python from the constants of
 * native/linux_seccomp_h.py).
 *
 * Made where the shim knows this architecture's AUDIT_ARCH (JN_AUDIT_ARCH, defined by
 * native/linux_seccomp_h.py); elsewhere each is -1 with ENOSYS. Raw calls: -1 with
 * errno, nothing retried. Part of the shim's one translation unit (see janus_net.h).
 */
#include <errno.h>
#include <unistd.h>

#include "janus_net.h"

#if defined(JN_AUDIT_ARCH)
/* seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &action): 0 where the kernel has filters and that action. */
static int jn_seccomp_action_avail(unsigned int action)
{
    return (int)syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action);
}

/* seccomp(SECCOMP_SET_MODE_FILTER, flags, prog). With TSYNC an older kernel returns the id
   of a thread it could not synchronize: a failure, reported as ESRCH like TSYNC_ESRCH. */
static int jn_seccomp_set_filter(unsigned int flags, struct sock_fprog *prog)
{
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, prog);
    if (rc > 0) {
        errno = ESRCH;
        return -1;
    }
    return (int)rc;
}
#else
static int jn_seccomp_action_avail(unsigned int action)
{
    (void)action;
    errno = ENOSYS;
    return -1;
}

static int jn_seccomp_set_filter(unsigned int flags, struct sock_fprog *prog)
{
    (void)flags;
    (void)prog;
    errno = ENOSYS;
    return -1;
}
#endif
