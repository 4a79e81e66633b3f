"""Declarations from <unistd.h>: closing descriptors, reading, and changing an inode's owner.

The owned-descriptor cell that every descriptor janus_net owns lives in is janus_net's
own C: native/src/jn_desc.c, declared in native/src/janus_net.h.
"""

INCLUDES = """
#include <unistd.h>
"""

TYPES = """
typedef int... uid_t;
typedef int... gid_t;
"""

FUNCTIONS = """
int close(int);
/* read: drains the wake pipe of `janus-net run`; dup2: points stdout at /dev/null after a failed write. */
ssize_t read(int, void *, size_t);
int dup2(int, int);
/* unlink: removes a stale socket file (DESIGN §7), only after its identity was checked. */
int unlink(const char *);
/* fchownat(fd, "", uid, gid, AT_EMPTY_PATH): the owner of the inode an O_PATH fd names. */
int fchownat(int, const char *, uid_t, gid_t, int);
"""

CUSTOMIZATIONS = ""
