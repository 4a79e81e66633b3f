"""Declarations from <unistd.h>: closing descriptors, changing an inode's owner."""

INCLUDES = """
#include <unistd.h>
"""

TYPES = """
typedef int... uid_t;
typedef int... gid_t;
"""

FUNCTIONS = """
int close(int);
/* fchownat(fd, "", uid, gid, AT_EMPTY_PATH): the owner of the inode an O_PATH fd names. */
int fchownat(int, const char *, uid_t, gid_t, int);
"""

CUSTOMIZATIONS = ""
