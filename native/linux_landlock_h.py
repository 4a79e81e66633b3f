"""Declarations for Landlock (<linux/landlock.h>, <sys/syscall.h>, <sys/prctl.h>): a kernel-enforced NetBind.

glibc has no wrappers for the three Landlock syscalls; janus_net's own (native/src/jn_landlock.c)
call them through syscall(2) with the numbers the compiler's <sys/syscall.h> defines, where
``JN_HAS_LANDLOCK`` says it knows them.

The network part of the UAPI (``handled_access_net``, ``struct landlock_net_port_attr``,
LANDLOCK_RULE_NET_PORT, LANDLOCK_ACCESS_NET_BIND_TCP) arrived in Linux 6.7 (ABI 4).
Build machines often carry older kernel headers than the kernel they run, so when the
header predates it the shim uses the kernel's stable UAPI values itself (the kernel keeps
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

FUNCTIONS = ""

# The flags native/src/jn_landlock.c tests with #if are macros (cffi reads a macro's value
# as it reads a constant's).
CUSTOMIZATIONS = """
#if defined(__linux__) && defined(SYS_landlock_create_ruleset) && defined(SYS_landlock_add_rule) \\
    && defined(SYS_landlock_restrict_self)
#define JN_HAS_LANDLOCK 1
static const int JN_LANDLOCK_CREATE_RULESET_VERSION = LANDLOCK_CREATE_RULESET_VERSION;
#else
#define JN_HAS_LANDLOCK 0
static const int JN_LANDLOCK_CREATE_RULESET_VERSION = 0;
#endif

#if defined(__linux__) && defined(LANDLOCK_ACCESS_NET_BIND_TCP)
#define JN_LANDLOCK_NET_FROM_HEADER 1
static const int JN_LANDLOCK_RULE_NET_PORT = LANDLOCK_RULE_NET_PORT;
static const long long JN_LANDLOCK_ACCESS_NET_BIND_TCP = LANDLOCK_ACCESS_NET_BIND_TCP;
#else
/* The kernel's UAPI since Linux 6.7 (Documentation/userspace-api/landlock.rst), for
   headers that predate it: rule type 2, access bit 0. */
#define JN_LANDLOCK_NET_FROM_HEADER 0
static const int JN_LANDLOCK_RULE_NET_PORT = 2;
static const long long JN_LANDLOCK_ACCESS_NET_BIND_TCP = 1;
#endif

#if defined(__linux__) && defined(LANDLOCK_RESTRICT_SELF_TSYNC)
static const int JN_LANDLOCK_RESTRICT_SELF_TSYNC = LANDLOCK_RESTRICT_SELF_TSYNC;
#else
static const int JN_LANDLOCK_RESTRICT_SELF_TSYNC = 0;
#endif

#if defined(__linux__) && defined(PR_SET_NO_NEW_PRIVS)
#define JN_PR_SET_NO_NEW_PRIVS PR_SET_NO_NEW_PRIVS
#else
#define JN_PR_SET_NO_NEW_PRIVS 0
#endif
"""
