"""Declarations from <sys/wait.h>: waitpid, which reaps the commands `janus-net run` started."""

INCLUDES = """
#include <sys/wait.h>
"""

TYPES = """
static const int WNOHANG;
"""

FUNCTIONS = """
pid_t waitpid(pid_t, int *, int);
"""

CUSTOMIZATIONS = ""
