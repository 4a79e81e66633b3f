/* jn_netns.c -- opening a network namespace file to enter it (setns on a helper thread).
 *
 * O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY: never blocks on a FIFO, never becomes a
 * controlling terminal. A raw call (-1 and errno on failure); the kind of the file is
 * asked afterwards (NS_GET_NSTYPE, native/sched_h.py). Part of the shim's one
 * translation unit (see janus_net.h).
 */
#include <fcntl.h>

#include "janus_net.h"

static int jn_open_namespace(const char *path)
{
    return open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
}
