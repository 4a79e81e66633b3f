"""Declarations from <fcntl.h>: descriptor flags (close-on-exec emulation, non-blocking)."""

INCLUDES = """
#include <fcntl.h>
"""

TYPES = """
static const int F_GETFD;
static const int F_SETFD;
static const int F_GETFL;
static const int F_SETFL;
static const int FD_CLOEXEC;
static const int O_NONBLOCK;
/* Opening the lock file beside a unix socket path, and the socket file itself by
   O_PATH to change its mode and owner through the inode, never through a name. */
static const int O_RDONLY;
/* /dev/null opened for writing, where stdout goes after a failed write (janus-net). */
static const int O_WRONLY;
static const int O_CREAT;
static const int O_NOFOLLOW;
static const int O_CLOEXEC;
static const int O_NOCTTY;
static const int AT_FDCWD;
/* O_PATH and AT_EMPTY_PATH, 0 where the platform has none. */
static const int JN_O_PATH;
static const int JN_AT_EMPTY_PATH;
"""

FUNCTIONS = """
/* fcntl is variadic; the shim only ever passes an int argument. */
int fcntl(int, int, ...);
int openat(int, const char *, int, ...);
"""

CUSTOMIZATIONS = """
#ifdef O_PATH
static const int JN_O_PATH = O_PATH;
#else
static const int JN_O_PATH = 0;
#endif
#ifdef AT_EMPTY_PATH
static const int JN_AT_EMPTY_PATH = AT_EMPTY_PATH;
#else
static const int JN_AT_EMPTY_PATH = 0;
#endif
"""
