"""Declarations from <sys/file.h>: flock, the lock beside a unix socket path (DESIGN §7)."""

INCLUDES = """
#include <sys/file.h>
"""

TYPES = """
static const int LOCK_EX;
static const int LOCK_NB;
static const int LOCK_UN;
"""

FUNCTIONS = """
int flock(int, int);
"""

CUSTOMIZATIONS = ""
