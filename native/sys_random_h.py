"""Declarations for random bytes from the kernel (<sys/random.h>: getrandom; getentropy elsewhere).

`jn_random` is a raw call (DESIGN §2): one getrandom(buf, len, 0) on Linux, or
getentropy (at most 256 bytes) elsewhere; -1 with errno on failure, never retried here.
"""

# getentropy is declared in <sys/random.h> on Darwin, in <unistd.h> on the BSDs.
INCLUDES = """
#if defined(__linux__) || defined(__APPLE__)
#include <sys/random.h>
#else
#include <unistd.h>
#endif
"""

TYPES = ""

FUNCTIONS = """
/* Fills buf with len random bytes; returns how many were written, or -1 with errno. */
long jn_random(void *, size_t);
"""

CUSTOMIZATIONS = """
static long jn_random(void *buf, size_t len)
{
#if defined(__linux__)
    return (long)getrandom(buf, len, 0);
#else
    if (getentropy(buf, len) < 0)
        return -1;
    return (long)len;
#endif
}
"""
