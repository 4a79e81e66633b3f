"""Declarations from <signal.h>: kill, which `janus-net run` uses to stop the commands it started."""

INCLUDES = """
#include <sys/types.h>
#include <signal.h>
"""

TYPES = """
typedef int... pid_t;
"""

FUNCTIONS = """
int kill(pid_t, int);
"""

CUSTOMIZATIONS = ""
