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
"""

FUNCTIONS = """
/* fcntl is variadic; the shim only ever passes an int argument. */
int fcntl(int, int, ...);
"""

CUSTOMIZATIONS = ""
