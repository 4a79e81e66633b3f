"""Declarations from <linux/sock_diag.h> and <linux/unix_diag.h>: which sockets are bound to which file.

The netlink family and protocol janus_net asks (DESIGN §7), and whether the platform has
unix_diag at all. The request and the walk of the replies are janus_net's own
(native/src/jn_unix_diag.c), made where ``JN_HAS_UNIX_DIAG`` is 1.
"""

INCLUDES = """
#include <string.h>
#if defined(__linux__)
/* makedev(): glibc and musl declare it here; the BSDs and Darwin in <sys/types.h>. */
#include <sys/sysmacros.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#endif
"""

TYPES = """
/* 0 where the platform has no unix_diag: janus_net then cannot tell a bound socket from a stale file. */
static const int JN_HAS_UNIX_DIAG;
static const int JN_AF_NETLINK;
static const int JN_NETLINK_SOCK_DIAG;
"""

FUNCTIONS = ""

# JN_HAS_UNIX_DIAG is a macro: native/src/jn_unix_diag.c tests it with #if.
CUSTOMIZATIONS = """
#if defined(__linux__) && defined(UDIAG_SHOW_VFS)
#define JN_HAS_UNIX_DIAG 1
static const int JN_AF_NETLINK = AF_NETLINK;
static const int JN_NETLINK_SOCK_DIAG = NETLINK_SOCK_DIAG;
#else
#define JN_HAS_UNIX_DIAG 0
static const int JN_AF_NETLINK = 0;
static const int JN_NETLINK_SOCK_DIAG = 0;
#endif
"""
