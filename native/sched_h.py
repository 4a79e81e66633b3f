"""Declarations for entering a network namespace (<sched.h>, <linux/nsfs.h>): setns on a helper thread.

The namespace file is opened by janus_net's own helper (native/src/jn_netns.c), its kind
is asked with the NS_GET_NSTYPE ioctl, and setns(fd, CLONE_NEWNET) makes the kernel check
it once more. jn_setns and jn_ns_get_nstype are the calls themselves, with a stand-in
(-1 and ENOSYS / ENOTTY) where the platform has no such thing.
"""

INCLUDES = """
#include <fcntl.h>
#include <sched.h>
#include <sys/ioctl.h>
#if defined(__linux__)
#include <linux/nsfs.h>
#endif
"""

TYPES = """
/* 1 where setns(2) and CLONE_NEWNET exist (Linux). */
static const int JN_HAS_SETNS;
static const int JN_CLONE_NEWNET;
/* 1 where the NS_GET_NSTYPE ioctl exists (Linux 4.11). */
static const int JN_HAS_NS_GET_NSTYPE;
"""

FUNCTIONS = """
int jn_ns_get_nstype(int);
int jn_setns(int, int);
"""

CUSTOMIZATIONS = """
#if defined(__linux__) && defined(CLONE_NEWNET)
static const int JN_HAS_SETNS = 1;
static const int JN_CLONE_NEWNET = CLONE_NEWNET;
static int jn_setns(int fd, int nstype) { return setns(fd, nstype); }
#else
static const int JN_HAS_SETNS = 0;
static const int JN_CLONE_NEWNET = 0;
static int jn_setns(int fd, int nstype) { (void)fd; (void)nstype; errno = ENOSYS; return -1; }
#endif

#if defined(__linux__) && defined(NS_GET_NSTYPE)
static const int JN_HAS_NS_GET_NSTYPE = 1;
static int jn_ns_get_nstype(int fd) { return ioctl(fd, NS_GET_NSTYPE); }
#else
static const int JN_HAS_NS_GET_NSTYPE = 0;
static int jn_ns_get_nstype(int fd) { (void)fd; errno = ENOTTY; return -1; }
#endif
"""
