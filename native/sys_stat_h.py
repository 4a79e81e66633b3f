"""Declarations from <sys/stat.h>: fchmod, which sets a unix socket's mode before bind."""

INCLUDES = """
#include <sys/stat.h>
"""

TYPES = """
typedef int... mode_t;
"""

FUNCTIONS = """
int fchmod(int, mode_t);
"""

CUSTOMIZATIONS = ""
