"""Declarations for Landlock (<linux/landlock.h>, <sys/syscall.h>, <sys/prctl.h>): a kernel-enforced NetBind.

glibc has no wrappers for the three Landlock syscalls, so the shim calls them through
syscall(2) with the numbers the compiler's <sys/syscall.h> defines. Each jn_landlock_*
function is a raw call: it returns -1 with errno and decides nothing.

The network part of the UAPI (``handled_access_net``, ``struct landlock_net_port_attr``,
LANDLOCK_RULE_NET_PORT, LANDLOCK_ACCESS_NET_BIND_TCP) arrived in Linux 6.7 (ABI 4).
Build machines often carry older kernel headers than the kernel they run, so when the
header predates it the shim declares the kernel's stable UAPI itself (the kernel keeps
that ABI forever: structs only grow at the end, and create_ruleset takes the size the
caller knows); ``JN_LANDLOCK_NET_FROM_HEADER`` says which happened. The ABI the running
kernel offers is asked at run time (LANDLOCK_CREATE_RULESET_VERSION), never assumed.
"""

INCLUDES = """
#if defined(__linux__)
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <linux/landlock.h>
#endif
"""

TYPES = """
/* Only the fields janus_net sets; the C side lays them out. */
struct jn_landlock_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    ...;
};
struct jn_landlock_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
    ...;
};

/* 1 where the compiler's headers know the Landlock syscalls (Linux). */
static const int JN_HAS_LANDLOCK;
/* 1 where <linux/landlock.h> itself declares the network rules (else the shim does). */
static const int JN_LANDLOCK_NET_FROM_HEADER;
static const int JN_LANDLOCK_CREATE_RULESET_VERSION;
static const int JN_LANDLOCK_RULE_NET_PORT;
static const long long JN_LANDLOCK_ACCESS_NET_BIND_TCP;
/* LANDLOCK_RESTRICT_SELF_TSYNC (ABI 8: restrict every thread at once), 0 where the header lacks it. */
static const int JN_LANDLOCK_RESTRICT_SELF_TSYNC;
static const int JN_PR_SET_NO_NEW_PRIVS;
"""

FUNCTIONS = """
int jn_landlock_create_ruleset(struct jn_desc *, const struct jn_landlock_ruleset_attr *, size_t, uint32_t);
int jn_landlock_add_net_port_rule(int, const struct jn_landlock_net_port_attr *);
int jn_landlock_restrict_self(int, uint32_t);
int jn_set_no_new_privs(void);
"""

CUSTOMIZATIONS = """
#if defined(__linux__) && defined(SYS_landlock_create_ruleset) && defined(SYS_landlock_add_rule) \\
    && defined(SYS_landlock_restrict_self)
static const int JN_HAS_LANDLOCK = 1;
static const int JN_LANDLOCK_CREATE_RULESET_VERSION = LANDLOCK_CREATE_RULESET_VERSION;
#else
static const int JN_HAS_LANDLOCK = 0;
static const int JN_LANDLOCK_CREATE_RULESET_VERSION = 0;
#endif

#if defined(__linux__) && defined(LANDLOCK_ACCESS_NET_BIND_TCP)
static const int JN_LANDLOCK_NET_FROM_HEADER = 1;
struct jn_landlock_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
};
struct jn_landlock_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
} __attribute__((packed));
_Static_assert(sizeof(struct jn_landlock_net_port_attr) == sizeof(struct landlock_net_port_attr),
               "landlock_net_port_attr layout");
_Static_assert(offsetof(struct landlock_ruleset_attr, handled_access_net)
               == offsetof(struct jn_landlock_ruleset_attr, handled_access_net), "ruleset layout");
static const int JN_LANDLOCK_RULE_NET_PORT = LANDLOCK_RULE_NET_PORT;
static const long long JN_LANDLOCK_ACCESS_NET_BIND_TCP = LANDLOCK_ACCESS_NET_BIND_TCP;
#else
/* The kernel's UAPI since Linux 6.7 (Documentation/userspace-api/landlock.rst), for
   headers that predate it: the second u64 of the ruleset attr, rule type 2, access bit 0. */
static const int JN_LANDLOCK_NET_FROM_HEADER = 0;
struct jn_landlock_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
};
struct jn_landlock_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
} __attribute__((packed));
static const int JN_LANDLOCK_RULE_NET_PORT = 2;
static const long long JN_LANDLOCK_ACCESS_NET_BIND_TCP = 1;
#endif

#if defined(__linux__) && defined(LANDLOCK_RESTRICT_SELF_TSYNC)
static const int JN_LANDLOCK_RESTRICT_SELF_TSYNC = LANDLOCK_RESTRICT_SELF_TSYNC;
#else
static const int JN_LANDLOCK_RESTRICT_SELF_TSYNC = 0;
#endif

#if defined(__linux__) && defined(PR_SET_NO_NEW_PRIVS)
static const int JN_PR_SET_NO_NEW_PRIVS = PR_SET_NO_NEW_PRIVS;
static int jn_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }
#else
static const int JN_PR_SET_NO_NEW_PRIVS = 0;
static int jn_set_no_new_privs(void) { errno = ENOSYS; return -1; }
#endif

#if defined(__linux__) && defined(SYS_landlock_create_ruleset) && defined(SYS_landlock_add_rule) \\
    && defined(SYS_landlock_restrict_self)
/* The ruleset fd goes into a descriptor cell, as every fd janus_net opens. */
static int jn_landlock_create_ruleset(struct jn_desc *d, const struct jn_landlock_ruleset_attr *attr, size_t size,
                                      uint32_t flags)
{
    int fd = (int)syscall(SYS_landlock_create_ruleset, attr, size, flags);
    if (fd >= 0 && attr != NULL)  /* attr NULL asks for the ABI version, not a ruleset */
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
    (void)d; (void)attr; (void)size; (void)flags; errno = ENOSYS; return -1;
}
static int jn_landlock_add_net_port_rule(int ruleset, const struct jn_landlock_net_port_attr *attr)
{
    (void)ruleset; (void)attr; errno = ENOSYS; return -1;
}
static int jn_landlock_restrict_self(int ruleset, uint32_t flags)
{
    (void)ruleset; (void)flags; errno = ENOSYS; return -1;
}
#endif
"""
