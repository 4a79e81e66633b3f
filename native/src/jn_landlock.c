/* jn_landlock.c -- the Landlock syscalls janus_net makes (a kernel-enforced NetBind), and
 * PR_SET_NO_NEW_PRIVS, which restrict_self requires of an unprivileged process.
 *
 * glibc has no wrappers for the three Landlock syscalls, so these call them through
 * syscall(2) with the numbers the compiler's <sys/syscall.h> defines (JN_HAS_LANDLOCK,
 * native/linux_landlock_h.py); elsewhere each is -1 with ENOSYS. Raw calls: -1 with errno,
 * nothing decided. Part of the shim's one translation unit (see janus_net.h).
 */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "janus_net.h"

#if JN_LANDLOCK_NET_FROM_HEADER
/* janus_net's structs (janus_net.h) are the kernel's, field for field: where the header
   declares the network rules, the compiler checks it. (The kernel's port attr is packed;
   two u64 fields have no padding to pack, so the sizes agree.) */
_Static_assert(sizeof(struct jn_landlock_net_port_attr) == sizeof(struct landlock_net_port_attr),
               "landlock_net_port_attr layout");
_Static_assert(offsetof(struct landlock_ruleset_attr, handled_access_net)
                   == offsetof(struct jn_landlock_ruleset_attr, handled_access_net),
               "ruleset layout");
#endif

#if JN_PR_SET_NO_NEW_PRIVS
static int jn_set_no_new_privs(void)
{
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}
#else
static int jn_set_no_new_privs(void)
{
    errno = ENOSYS;
    return -1;
}
#endif

#if JN_HAS_LANDLOCK
/* The ruleset fd goes into a descriptor cell, as every fd janus_net opens. */
static int jn_landlock_create_ruleset(struct jn_desc *d, const struct jn_landlock_ruleset_attr *attr, size_t size,
                                      uint32_t flags)
{
    int fd = (int)syscall(SYS_landlock_create_ruleset, attr, size, flags);
    if (fd >= 0 && attr != NULL) /* attr NULL asks for the ABI version, not a ruleset */
        __atomic_store_n(&d->fd, fd, __ATOMIC_SEQ_CST);
    return fd;
}

static int jn_landlock_add_net_port_rule(int ruleset, const struct jn_landlock_net_port_attr *attr)
{
    return (int)syscall(SYS_landlock_add_rule, ruleset, JN_LANDLOCK_RULE_NET_PORT, attr, 0);
}

static int jn_landlock_restrict_self(int ruleset, uint32_t flags)
{
    return (int)syscall(SYS_landlock_restrict_self, ruleset, flags);
}
#else
static int jn_landlock_create_ruleset(struct jn_desc *d, const struct jn_landlock_ruleset_attr *attr, size_t size,
                                      uint32_t flags)
{
    (void)d;
    (void)attr;
    (void)size;
    (void)flags;
    errno = ENOSYS;
    return -1;
}

static int jn_landlock_add_net_port_rule(int ruleset, const struct jn_landlock_net_port_attr *attr)
{
    (void)ruleset;
    (void)attr;
    errno = ENOSYS;
    return -1;
}

static int jn_landlock_restrict_self(int ruleset, uint32_t flags)
{
    (void)ruleset;
    (void)flags;
    errno = ENOSYS;
    return -1;
}
#endif
