"""Control messages (native side of janus_net/control.py): closing received descriptors, RLIMIT_NOFILE.

``jn_rights_close`` is the last resort of a receive buffer (its ffi.gc destructor),
for when an asynchronous exception cut the receiver's own explicit closing short.
``jn_slots_close`` closes the descriptors of one received SCM_RIGHTS message: each
slot is emptied (an atomic exchange with -1) before its fd is closed, so a slot
that `jn_desc_take` moved into a cell meanwhile, or that an earlier call closed,
is never closed again. It is a raw call: errors of close(2) are not reported (the
descriptor is released either way on Linux) and errno is left as it was.

getrlimit(2) is declared here for the one question janus_net asks: how many
descriptors this process may hold (RLIMIT_NOFILE), asked before a transfer of
descriptors is received.
"""

INCLUDES = """
#include <sys/resource.h>
#include <unistd.h>
"""

TYPES = """
typedef int... rlim_t;
struct rlimit {
    rlim_t rlim_cur;
    rlim_t rlim_max;
    ...;
};
static const int RLIMIT_NOFILE;
"""

FUNCTIONS = """
/* A recvmsg control buffer big enough for one SCM_RIGHTS message of JN_SCM_MAX_FD fds. */
static const int JN_RIGHTS_CONTROL_SIZE;
void jn_rights_close(char *);
int getrlimit(int, struct rlimit *);
/* Close the n descriptors in slots (each slot becomes -1 first); returns how many were open. */
int jn_slots_close(int *, int);
"""

CUSTOMIZATIONS = """
static const int JN_RIGHTS_CONTROL_SIZE = (int)CMSG_SPACE(sizeof(int) * JN_SCM_MAX_FD);

/* The backstop of a zeroed recvmsg control buffer (its ffi.gc destructor): close every
   descriptor an SCM_RIGHTS message left in it that nobody claimed (a claimed slot
   holds -1). The receiver's own paths close them explicitly (jn_slots_close) or claim
   them into cells; this runs only when that was cut short (an asynchronous exception
   inside the except handler), so a received descriptor can never outlive its buffer. The kernel's msg_controllen is
   not needed: past what it wrote the buffer is still zero (cmsg_len 0 ends the walk). */
static void jn_rights_close(char *control)
{
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_control = control;
    m.msg_controllen = JN_RIGHTS_CONTROL_SIZE;
    int saved = errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_len < CMSG_LEN(0) || (char *)c + c->cmsg_len > control + JN_RIGHTS_CONTROL_SIZE)
            break;
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int *slots = (int *)CMSG_DATA(c);
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd = __atomic_exchange_n(&slots[i], -1, __ATOMIC_SEQ_CST);
            if (fd >= 0)
                close(fd);
        }
    }
    errno = saved;
}

static int jn_slots_close(int *slots, int n)
{
    int saved = errno;
    int closed = 0;
    for (int i = 0; i < n; i++) {
        int fd = __atomic_exchange_n(&slots[i], -1, __ATOMIC_SEQ_CST);
        if (fd >= 0) {
            close(fd);
            closed++;
        }
    }
    errno = saved;
    return closed;
}
"""
