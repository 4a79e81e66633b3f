"""Control messages (native side of janus_net/control.py): closing received descriptors, RLIMIT_NOFILE.

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
int getrlimit(int, struct rlimit *);
/* Close the n descriptors in slots (each slot becomes -1 first); returns how many were open. */
int jn_slots_close(int *, int);
"""

CUSTOMIZATIONS = """
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
