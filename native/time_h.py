"""Declarations from <time.h>: struct timespec, the payload of SCM_TIMESTAMPNS."""

INCLUDES = """
#include <time.h>
"""

TYPES = """
typedef int... time_t;

struct timespec {
    time_t tv_sec;
    long tv_nsec;
    ...;
};
"""

FUNCTIONS = ""

CUSTOMIZATIONS = ""
