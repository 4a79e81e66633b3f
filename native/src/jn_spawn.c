/* jn_spawn.c -- one native call that starts a command for `janus-net run`.
 *
 * posix_spawn cannot set PR_SET_PDEATHSIG, so this is a fork and an exec with only
 * async-signal-safe calls between them (the process that forks runs threads):
 *
 *   parent: block every signal, fork, restore its mask;
 *   child:  each caught signal and each listed one back to its default action (an
 *           ignored signal stays ignored across exec; a caught one would run the
 *           parent's handler before the exec), its own process group (setpgid 0:
 *           a terminal's job signal reaches the supervisor only), dup2 of each passed
 *           socket to its number, prctl(PR_SET_PDEATHSIG, pdeathsig) when pdeathsig is
 *           not 0, then getppid() must still be the parent (it may have died before
 *           the prctl: no signal would ever come), an empty signal mask, execve.
 *
 * An exec that fails writes its errno to a close-on-exec pipe and the child exits
 * 127; the parent reads the pipe until it closes (the exec succeeded) or an errno
 * comes (it reaps the child and returns -1 with that errno, as posix_spawn would).
 * The parent's read and waitpid loop on EINTR inside this call: the child exists, so
 * the retry loop above must never call again. It decides nothing else.
 *
 * Part of the shim's one translation unit (see janus_net.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "janus_net.h"

static void jn_spawn_child(int report, pid_t parent, const char *path, char *const argv[], char *const envp[],
                           const int *dup_from, const int *dup_to, int ndup, const int *sigdef, int nsigdef,
                           int pdeathsig)
{
    struct sigaction dfl, old;
    sigset_t empty;
    int i, sig, high = 0, err;

    dfl.sa_handler = SIG_DFL;
    dfl.sa_flags = 0;
    sigemptyset(&dfl.sa_mask);
    for (sig = 1; sig < NSIG; sig++) {
        if (sigaction(sig, NULL, &old) != 0)
            continue; /* SIGKILL, SIGSTOP, the C library's own */
        if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)
            sigaction(sig, &dfl, NULL);
    }
    for (i = 0; i < nsigdef; i++)
        sigaction(sigdef[i], &dfl, NULL);
    if (setpgid(0, 0) != 0)
        goto fail;
    /* The report pipe must survive the dup2 steps: move it above every target. */
    for (i = 0; i < ndup; i++)
        if (dup_to[i] >= high)
            high = dup_to[i] + 1;
    if (report < high) {
        int moved = fcntl(report, F_DUPFD_CLOEXEC, high);
        if (moved < 0)
            goto fail;
        report = moved;
    }
    for (i = 0; i < ndup; i++)
        if (dup2(dup_from[i], dup_to[i]) < 0)
            goto fail;
    if (pdeathsig != 0) {
#ifdef PR_SET_PDEATHSIG
        if (prctl(PR_SET_PDEATHSIG, pdeathsig) != 0)
            goto fail;
#endif
        if (getppid() != parent)
            _exit(127);
    }
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    execve(path, argv, envp);
fail:
    err = errno;
    while (write(report, &err, sizeof err) < 0 && errno == EINTR)
        ;
    _exit(127);
}

static int jn_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[], const int *dup_from,
                    const int *dup_to, int ndup, const int *sigdef, int nsigdef, int pdeathsig)
{
    sigset_t all, saved;
    int report[2], err = 0, status;
    ssize_t got;
    pid_t parent = getpid(), child;

#ifdef __linux__
    if (pipe2(report, O_CLOEXEC) != 0)
        return -1;
#else
    /* No pipe2 (Darwin): a fork in another thread in between would inherit it, never exec with it. */
    if (pipe(report) != 0)
        return -1;
    fcntl(report[0], F_SETFD, FD_CLOEXEC);
    fcntl(report[1], F_SETFD, FD_CLOEXEC);
#endif
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    child = fork();
    if (child == 0)
        jn_spawn_child(report[1], parent, path, argv, envp, dup_from, dup_to, ndup, sigdef, nsigdef, pdeathsig);
    err = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    close(report[1]);
    if (child < 0) {
        close(report[0]);
        errno = err;
        return -1;
    }
    do
        got = read(report[0], &err, sizeof err);
    while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got == (ssize_t)sizeof err) {
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
            ;
        errno = err;
        return -1;
    }
    *pid = child;
    return 0;
}
