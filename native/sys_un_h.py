"""Declarations from <sys/un.h>: unix-domain socket addresses."""

INCLUDES = """
#include <sys/un.h>
"""

TYPES = """
struct sockaddr_un {
    sa_family_t sun_family;
    char sun_path[...];
    ...;
};

/* Linux lets a unix socket live in an abstract namespace: sun_path[0] == 0. */
static const int JN_HAS_ABSTRACT_UNIX;
"""

FUNCTIONS = ""

CUSTOMIZATIONS = """
#if defined(__linux__)
static const int JN_HAS_ABSTRACT_UNIX = 1;
#else
static const int JN_HAS_ABSTRACT_UNIX = 0;
#endif
"""
