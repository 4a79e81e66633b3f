"""Declarations from <sys/stat.h>: fchmod, which sets a unix socket's mode before bind;
fstat and chmod, which check and widen the mode of the file bind created (DESIGN §7)."""

INCLUDES = """
#include <sys/stat.h>
"""

TYPES = """
typedef int... mode_t;
typedef int... dev_t;
typedef int... ino_t;
typedef int... off_t;
struct stat {
    dev_t st_dev;
    ino_t st_ino;
    mode_t st_mode;
    uid_t st_uid;
    gid_t st_gid;
    off_t st_size;
    ...;
};
static const int S_IFMT;
static const int S_IFSOCK;
static const int S_IFREG;
static const int S_IFDIR;
static const int S_IFIFO;
static const int S_IFCHR;
static const int S_IFBLK;
static const int S_IFLNK;
"""

FUNCTIONS = """
int fchmod(int, mode_t);
int fstat(int, struct stat *);
/* lstat: what a path names now, without following a final symlink (stale socket files). */
int lstat(const char *, struct stat *);
/* chmod("/proc/self/fd/N"): the mode of exactly the inode an O_PATH fd holds. */
int chmod(const char *, mode_t);
"""

CUSTOMIZATIONS = ""
