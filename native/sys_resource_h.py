"""Declarations from <sys/resource.h>: how many descriptors this process may hold (RLIMIT_NOFILE).

The one question janus_net asks of getrlimit(2), before a transfer of descriptors is received.
"""

INCLUDES = """
#include <sys/resource.h>
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
"""

CUSTOMIZATIONS = ""
