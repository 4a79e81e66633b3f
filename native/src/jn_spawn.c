/* jn_spawn.c -- one native call that starts a command (posix_spawn) for `janus-net run`.
 *
 * `jn_spawn` builds the file actions (dup2 of each passed socket to its number in the
 * child) and the attributes (an empty signal mask; the listed signals back to their
 * default action, since an ignored signal stays ignored across exec), calls
 * posix_spawn once and frees what it built. It is a raw call (DESIGN section 2): posix_spawn
 * returns its error instead of setting errno, so the helper sets errno and returns -1,
 * as every other call the retry loop drives; it never retries and decides nothing.
 *
 * Part of the shim's one translation unit (see janus_net.h).
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>

#include "janus_net.h"

static int jn_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                    const int *dup_from, const int *dup_to, int ndup, const int *sigdef, int nsigdef)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t mask, defaults;
    int rc, i;

    rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&actions);
        errno = rc;
        return -1;
    }
    for (i = 0; rc == 0 && i < ndup; i++)
        rc = posix_spawn_file_actions_adddup2(&actions, dup_from[i], dup_to[i]);
    sigemptyset(&mask);
    sigemptyset(&defaults);
    for (i = 0; i < nsigdef; i++)
        sigaddset(&defaults, sigdef[i]);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&attr, &mask);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&attr, &defaults);
    if (rc == 0)
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (rc == 0)
        rc = posix_spawn(pid, path, &actions, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}
