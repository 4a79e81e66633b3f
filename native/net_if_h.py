"""Declarations from <net/if.h>: resolving IPv6 zone names to interface indexes."""

INCLUDES = """
#include <net/if.h>
"""

TYPES = """
static const int IF_NAMESIZE;
"""

FUNCTIONS = """
unsigned int if_nametoindex(const char *);
char *if_indextoname(unsigned int, char *);
"""

CUSTOMIZATIONS = ""
