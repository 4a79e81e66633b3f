"""Declarations from <sys/stat.h>: fchmod, which sets a unix socket's mode before bind;
fstat and chmod, which check and widen the mode of the file bind created (DESIGN §7); stat, whose
identity and change times tell the resolver whether resolv.conf or hosts changed since it read them
(DESIGN §17)."""

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
/* stat: the file a path names, a final symlink followed (/etc/resolv.conf often is one). */
int stat(const char *, struct stat *);
/* chmod("/proc/self/fd/N"): the mode of exactly the inode an O_PATH fd holds. */
int chmod(const char *, mode_t);
/* The modification and status-change times of a filled struct stat, in nanoseconds (no syscall):
   the fields' names differ between platforms (CUSTOMIZATIONS). */
long long jn_stat_mtime_ns(const struct stat *);
long long jn_stat_ctime_ns(const struct stat *);
"""

CUSTOMIZATIONS = """
/* POSIX.1-2008 names the times st_mtim and st_ctim (Linux, the BSDs); macOS keeps its own
   st_mtimespec and st_ctimespec (<sys/stat.h>, struct stat with _DARWIN_FEATURE_64_BIT_INODE). */
#if defined(__APPLE__)
#define JN_ST_MTIM st_mtimespec
#define JN_ST_CTIM st_ctimespec
#else
#define JN_ST_MTIM st_mtim
#define JN_ST_CTIM st_ctim
#endif
static long long jn_stat_mtime_ns(const struct stat *st)
{
    return (long long)st->JN_ST_MTIM.tv_sec * 1000000000LL + (long long)st->JN_ST_MTIM.tv_nsec;
}
static long long jn_stat_ctime_ns(const struct stat *st)
{
    return (long long)st->JN_ST_CTIM.tv_sec * 1000000000LL + (long long)st->JN_ST_CTIM.tv_nsec;
}
"""
