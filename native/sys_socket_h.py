"""Declarations from <sys/socket.h>: the socket calls and the generic address structs."""

INCLUDES = """
#include <sys/types.h>
#include <sys/socket.h>
"""

TYPES = """
typedef int... socklen_t;
typedef int... sa_family_t;
/* The widths of these fields differ: size_t in glibc, int or socklen_t (with padding) in musl,
   Darwin and the BSDs, ssize_t for FreeBSD's msg_len. Each is named by its field's own type
   (CUSTOMIZATIONS), so the cdef states no width the platform does not have. */
typedef int... jn_msg_iovlen_t;
typedef int... jn_msg_controllen_t;
typedef int... jn_cmsg_len_t;
typedef int... jn_mmsg_len_t;

struct sockaddr {
    sa_family_t sa_family;
    char sa_data[...];
    ...;
};

struct sockaddr_storage {
    sa_family_t ss_family;
    ...;
};

struct msghdr {
    void *msg_name;
    socklen_t msg_namelen;
    struct iovec *msg_iov;
    jn_msg_iovlen_t msg_iovlen;
    void *msg_control;
    jn_msg_controllen_t msg_controllen;
    int msg_flags;
    ...;
};

/* Ancillary data (SCM_RIGHTS, SO_PEERCRED, UDP_SEGMENT, IP_PKTINFO...): the layout and
   the CMSG_* macros are the compiler's, reached through the jn_cmsg_* functions below,
   so no offset or alignment is computed in Python. */
struct cmsghdr {
    jn_cmsg_len_t cmsg_len;
    int cmsg_level;
    int cmsg_type;
    ...;
};

struct ucred {
    int pid;
    int uid;
    int gid;
    ...;
};

struct mmsghdr {
    struct msghdr msg_hdr;
    jn_mmsg_len_t msg_len;
    ...;
};

static const int AF_UNSPEC;
static const int AF_INET;
static const int AF_INET6;
static const int AF_UNIX;

static const int SOCK_STREAM;
static const int SOCK_DGRAM;
static const int SOCK_SEQPACKET;
static const int SOCK_RAW;
static const int SOCK_RDM;

static const int SOL_SOCKET;
static const int SO_REUSEADDR;
static const int SO_BROADCAST;
static const int SO_TYPE;
static const int SO_ERROR;
static const int SO_ACCEPTCONN;
static const int SO_DOMAIN;
static const int SO_RCVBUF;
static const int SO_SNDBUF;

static const int SHUT_RD;
static const int SHUT_WR;
static const int SHUT_RDWR;

static const int MSG_DONTWAIT;
static const int MSG_PEEK;
static const int MSG_TRUNC;
static const int MSG_WAITFORONE;
static const int MSG_CTRUNC;
static const int SCM_RIGHTS;
/* SO_PASSCRED (Linux: each datagram says who sent it), 0 where the platform has none. */
static const int JN_SO_PASSCRED;

/* Feature flags and portable stand-ins, defined in CUSTOMIZATIONS from what the
   compiler sees. A 0 constant means "this platform has no such thing". */
static const int JN_HAS_SOCK_CLOEXEC;
static const int JN_SOCK_CLOEXEC;
static const int JN_SOCK_NONBLOCK;
static const int JN_HAS_ACCEPT4;
static const int JN_HAS_MMSG;
static const int JN_MSG_NOSIGNAL;
static const int JN_SO_NOSIGPIPE;
static const int JN_SO_REUSEPORT;
/* MSG_CMSG_CLOEXEC (received descriptors close-on-exec from the first instant), 0 without. */
static const int JN_MSG_CMSG_CLOEXEC;
/* SO_PEERCRED and SCM_CREDENTIALS (Linux's struct ucred), 0 without. */
static const int JN_HAS_UCRED;
static const int JN_SO_PEERCRED;
static const int JN_SCM_CREDENTIALS;
/* The kernel's limit of descriptors per SCM_RIGHTS message (SCM_MAX_FD, 253 on Linux). */
static const int JN_SCM_MAX_FD;
/* Kernel receive timestamps as a struct timespec (SO_TIMESTAMPNS, delivered as
   SCM_TIMESTAMPNS), 0 without. */
static const int JN_SO_TIMESTAMPNS;
static const int JN_SCM_TIMESTAMPNS;
/* An accepted socket inherits the listener's O_NONBLOCK (BSD-derived kernels). */
static const int JN_ACCEPT_INHERITS_O_NONBLOCK;
/* SO_PROTOCOL exists (JN_SO_PROTOCOL is 0 without). */
static const int JN_HAS_SO_PROTOCOL;
static const int JN_SO_PROTOCOL;
/* SO_DOMAIN exists (JN_SO_DOMAIN is 0 without): an adopted socket's family can be read
   without getsockname, which some families (AF_XDP) do not answer. */
static const int JN_HAS_SO_DOMAIN;
static const int JN_SO_DOMAIN;
"""

FUNCTIONS = """
/* accept, send, recv, sendto, recvfrom and the mmsg calls are made by the owned-
   descriptor calls of native/src/jn_desc.c (jn_desc_*), which Python calls instead. */
int socket(int, int, int);
int setsockopt(int, int, int, const void *, socklen_t);
int getsockopt(int, int, int, void *, socklen_t *);
int bind(int, const struct sockaddr *, socklen_t);
int connect(int, const struct sockaddr *, socklen_t);
int listen(int, int);
int getsockname(int, struct sockaddr *, socklen_t *);
int getpeername(int, struct sockaddr *, socklen_t *);
int shutdown(int, int);
ssize_t sendmsg(int, const struct msghdr *, int);
ssize_t recvmsg(int, struct msghdr *, int);

/* The CMSG_* macros as functions: pure arithmetic on the caller's buffer, no syscall. */
size_t jn_cmsg_space(size_t);
size_t jn_cmsg_len(size_t);
struct cmsghdr *jn_cmsg_firsthdr(struct msghdr *);
struct cmsghdr *jn_cmsg_nxthdr(struct msghdr *, struct cmsghdr *);
unsigned char *jn_cmsg_data(struct cmsghdr *);
"""

CUSTOMIZATIONS = """
#ifdef SOCK_CLOEXEC
static const int JN_HAS_SOCK_CLOEXEC = 1;
static const int JN_SOCK_CLOEXEC = SOCK_CLOEXEC;
#else
static const int JN_HAS_SOCK_CLOEXEC = 0;
static const int JN_SOCK_CLOEXEC = 0;
#endif

#ifdef SOCK_NONBLOCK
static const int JN_SOCK_NONBLOCK = SOCK_NONBLOCK;
#else
static const int JN_SOCK_NONBLOCK = 0;
#endif

/* A Darwin flag the SDK defines is used only if the oldest macOS the build targets honours it:
   recent SDKs define MSG_NOSIGNAL, but the macOS releases before 27 that the package claims
   (README, Platforms) honour only SO_NOSIGPIPE, which every socket then gets. */
#if defined(__APPLE__) && defined(__ENVIRONMENT_MAC_OS_X_VERSION_MIN_REQUIRED__) \
    && __ENVIRONMENT_MAC_OS_X_VERSION_MIN_REQUIRED__ >= 270000
#define JN_DARWIN_HONOURS_MSG_NOSIGNAL 1
#else
#define JN_DARWIN_HONOURS_MSG_NOSIGNAL 0
#endif
#if defined(MSG_NOSIGNAL) && (!defined(__APPLE__) || JN_DARWIN_HONOURS_MSG_NOSIGNAL)
static const int JN_MSG_NOSIGNAL = MSG_NOSIGNAL;
#else
static const int JN_MSG_NOSIGNAL = 0;
#endif

#ifdef SO_NOSIGPIPE
static const int JN_SO_NOSIGPIPE = SO_NOSIGPIPE;
#else
static const int JN_SO_NOSIGPIPE = 0;
#endif

#ifdef SO_PASSCRED
static const int JN_SO_PASSCRED = SO_PASSCRED;
#else
static const int JN_SO_PASSCRED = 0;
#endif

#ifdef SO_REUSEPORT
static const int JN_SO_REUSEPORT = SO_REUSEPORT;
#else
static const int JN_SO_REUSEPORT = 0;
#endif

/* accept4 exists on Linux and the BSDs but not on Darwin or Haiku. jn_accept4, jn_sendmmsg and
   jn_recvmmsg are the portable stand-ins native/src/jn_desc.c calls (ENOSYS where missing). */
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) \\
    || defined(__OpenBSD__) || defined(__DragonFly__)
static const int JN_HAS_ACCEPT4 = 1;
static int jn_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    return accept4(fd, sa, len, flags);
}
#else
static const int JN_HAS_ACCEPT4 = 0;
static int jn_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    (void)fd; (void)sa; (void)len; (void)flags;
    errno = ENOSYS;
    return -1;
}
#endif

/* sendmmsg/recvmmsg are Linux (and FreeBSD 11+) only; elsewhere the Python side loops. */
#if defined(__linux__)
static const int JN_HAS_MMSG = 1;
static int jn_sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
    return sendmmsg(fd, v, n, flags);
}
static int jn_recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
    /* No timeout argument: recvmmsg's timeout is only checked after a datagram
       arrives (see BUGS in recvmmsg(2)); callers wait with poll instead. */
    return recvmmsg(fd, v, n, flags, NULL);
}
#else
static const int JN_HAS_MMSG = 0;
/* FreeBSD 11+, NetBSD 7+ and OpenBSD 7.2+ declare their own struct mmsghdr (with an ssize_t
   msg_len on FreeBSD); a stand-in is declared only where the header has none. */
#if !defined(__FreeBSD__) && !defined(__NetBSD__) && !defined(__OpenBSD__) && !defined(__DragonFly__)
struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; };
#endif
static int jn_sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
    (void)fd; (void)v; (void)n; (void)flags;
    errno = ENOSYS;
    return -1;
}
static int jn_recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
    (void)fd; (void)v; (void)n; (void)flags;
    errno = ENOSYS;
    return -1;
}
#endif

typedef __typeof__(((struct msghdr *)0)->msg_iovlen) jn_msg_iovlen_t;
typedef __typeof__(((struct msghdr *)0)->msg_controllen) jn_msg_controllen_t;
typedef __typeof__(((struct cmsghdr *)0)->cmsg_len) jn_cmsg_len_t;
typedef __typeof__(((struct mmsghdr *)0)->msg_len) jn_mmsg_len_t;

#ifdef MSG_CMSG_CLOEXEC
static const int JN_MSG_CMSG_CLOEXEC = MSG_CMSG_CLOEXEC;
#else
static const int JN_MSG_CMSG_CLOEXEC = 0;
#endif

#if defined(SO_PEERCRED) && defined(SCM_CREDENTIALS)
static const int JN_HAS_UCRED = 1;
static const int JN_SO_PEERCRED = SO_PEERCRED;
static const int JN_SCM_CREDENTIALS = SCM_CREDENTIALS;
#else
static const int JN_HAS_UCRED = 0;
static const int JN_SO_PEERCRED = 0;
static const int JN_SCM_CREDENTIALS = 0;
struct ucred { int pid; int uid; int gid; };
#endif

/* SCM_MAX_FD lives in a kernel header (include/net/scm.h), not in libc's: Linux has
   refused more than 253 descriptors per message since 2.6.38; the BSDs take more, so
   253 is a safe chunk everywhere. */
#ifdef SCM_MAX_FD
static const int JN_SCM_MAX_FD = SCM_MAX_FD;
#else
static const int JN_SCM_MAX_FD = 253;
#endif

static size_t jn_cmsg_space(size_t n) { return CMSG_SPACE(n); }
static size_t jn_cmsg_len(size_t n) { return CMSG_LEN(n); }
static struct cmsghdr *jn_cmsg_firsthdr(struct msghdr *m) { return CMSG_FIRSTHDR(m); }
static struct cmsghdr *jn_cmsg_nxthdr(struct msghdr *m, struct cmsghdr *c) { return CMSG_NXTHDR(m, c); }
static unsigned char *jn_cmsg_data(struct cmsghdr *c) { return CMSG_DATA(c); }

#if defined(SO_TIMESTAMPNS) && defined(SCM_TIMESTAMPNS)
static const int JN_SO_TIMESTAMPNS = SO_TIMESTAMPNS;
static const int JN_SCM_TIMESTAMPNS = SCM_TIMESTAMPNS;
#else
static const int JN_SO_TIMESTAMPNS = 0;
static const int JN_SCM_TIMESTAMPNS = 0;
#endif

#ifndef SOCK_RDM
#define SOCK_RDM (-1)
#endif
#ifndef MSG_WAITFORONE
#define MSG_WAITFORONE 0
#endif
#ifdef SO_DOMAIN
static const int JN_HAS_SO_DOMAIN = 1;
static const int JN_SO_DOMAIN = SO_DOMAIN;
#else
static const int JN_HAS_SO_DOMAIN = 0;
static const int JN_SO_DOMAIN = 0;
#define SO_DOMAIN (-1)
#endif
#ifdef SO_PROTOCOL
static const int JN_HAS_SO_PROTOCOL = 1;
static const int JN_SO_PROTOCOL = SO_PROTOCOL;
#else
static const int JN_HAS_SO_PROTOCOL = 0;
static const int JN_SO_PROTOCOL = 0;
#endif

#if defined(__linux__)
static const int JN_ACCEPT_INHERITS_O_NONBLOCK = 0;
#else
static const int JN_ACCEPT_INHERITS_O_NONBLOCK = 1;
#endif
"""
