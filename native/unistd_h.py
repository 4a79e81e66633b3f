"""Declarations from <unistd.h>: closing descriptors."""

INCLUDES = """
#include <unistd.h>
"""

TYPES = ""

FUNCTIONS = """
int close(int);
"""

CUSTOMIZATIONS = ""
