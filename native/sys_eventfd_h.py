"""Declarations from <sys/eventfd.h>: whether a wake pair is an eventfd (one fd) or a pipe (two)."""

INCLUDES = """
#if defined(__linux__)
#include <sys/eventfd.h>
#endif
"""

TYPES = """
static const int JN_HAS_EVENTFD;
"""

FUNCTIONS = ""

# A macro: native/src/jn_wake.c tests it with #if.
CUSTOMIZATIONS = """
#if defined(__linux__)
#define JN_HAS_EVENTFD 1
#else
#define JN_HAS_EVENTFD 0
#endif
"""
