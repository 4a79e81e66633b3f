"""Declarations from <sys/socket.h>: the socket calls and the generic address structs."""

INCLUDES = """
#include <sys/types.h>
#include <sys/socket.h>
"""

TYPES = """
typedef int... socklen_t;
typedef int... sa_family_t;

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
    size_t msg_iovlen;
    void *msg_control;
    size_t msg_controllen;
    int msg_flags;
    ...;
};

struct mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
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
static const int SO_PROTOCOL;
static const int SO_RCVBUF;
static const int SO_SNDBUF;

static const int SHUT_RD;
static const int SHUT_WR;
static const int SHUT_RDWR;

static const int MSG_DONTWAIT;
static const int MSG_PEEK;
static const int MSG_TRUNC;
static const int MSG_WAITFORONE;

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
"""

FUNCTIONS = """
int socket(int, int, int);
int setsockopt(int, int, int, const void *, socklen_t);
int getsockopt(int, int, int, void *, socklen_t *);
int bind(int, const struct sockaddr *, socklen_t);
int connect(int, const struct sockaddr *, socklen_t);
int listen(int, int);
int accept(int, struct sockaddr *, socklen_t *);
int jn_accept4(int, struct sockaddr *, socklen_t *, int);
int getsockname(int, struct sockaddr *, socklen_t *);
int getpeername(int, struct sockaddr *, socklen_t *);
int shutdown(int, int);
ssize_t send(int, const void *, size_t, int);
ssize_t recv(int, void *, size_t, int);
ssize_t sendto(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
ssize_t recvfrom(int, void *, size_t, int, struct sockaddr *, socklen_t *);
ssize_t sendmsg(int, const struct msghdr *, int);
ssize_t recvmsg(int, struct msghdr *, int);
int jn_sendmmsg(int, struct mmsghdr *, unsigned int, int);
int jn_recvmmsg(int, struct mmsghdr *, unsigned int, int);
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

#ifdef MSG_NOSIGNAL
static const int JN_MSG_NOSIGNAL = MSG_NOSIGNAL;
#else
static const int JN_MSG_NOSIGNAL = 0;
#endif

#ifdef SO_NOSIGPIPE
static const int JN_SO_NOSIGPIPE = SO_NOSIGPIPE;
#else
static const int JN_SO_NOSIGPIPE = 0;
#endif

#ifdef SO_REUSEPORT
static const int JN_SO_REUSEPORT = SO_REUSEPORT;
#else
static const int JN_SO_REUSEPORT = 0;
#endif

/* accept4 exists on Linux and the BSDs but not on Darwin or Haiku. */
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
struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; };
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

#ifndef SOCK_RDM
#define SOCK_RDM (-1)
#endif
#ifndef MSG_WAITFORONE
#define MSG_WAITFORONE 0
#endif
#ifndef SO_DOMAIN
#define SO_DOMAIN (-1)
#endif
#ifndef SO_PROTOCOL
#define SO_PROTOCOL (-1)
#endif
"""
