"""Declarations from <poll.h>: waiting on a socket and a context's wake fd together."""

INCLUDES = """
#include <poll.h>
"""

TYPES = """
typedef int... nfds_t;

struct pollfd {
    int fd;
    short events;
    short revents;
    ...;
};

static const short POLLIN;
static const short POLLOUT;
static const short POLLERR;
static const short POLLHUP;
static const short POLLNVAL;
"""

# The owned-descriptor calls (jn_desc_wait, jn_desc_accept) poll in C; poll itself is
# for descriptors that are no socket object's (the supervisor's notify socket and signal
# pipe, a connect in progress).
FUNCTIONS = """
int poll(struct pollfd *, nfds_t, int);
"""

CUSTOMIZATIONS = ""
