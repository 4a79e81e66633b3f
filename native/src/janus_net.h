/* janus_net.h -- the native helpers of janus_net: every struct, constant and function of
 * janus_net's own C that the Python side sees, declared once.
 *
 * The helpers are raw calls (DESIGN section 2): they never retry, never map an errno and
 * never decide policy; on failure they return -1 with errno as the kernel left it
 * (EINTR included), and Python's one retry loop decides.
 *
 * One text, two readers. The C compiler reads this whole file. native/build_shim.py
 * hands the part between the two "cffi cdef" marker lines below, unchanged, to cffi's
 * cdef(), so that part is written in the subset of C both accept:
 *   - no preprocessor line but "#define NAME <integer literal>" (cffi reads the value,
 *     then checks it against the compiler's);
 *   - "static const int NAME;" for a constant whose value only the compiler knows: the
 *     .c file named beside it defines it with its value (a C tentative definition here,
 *     the definition there; cffi asks the compiler for the value);
 *   - structs in full: cffi checks every offset against the compiler's, so the two
 *     readers cannot disagree about a layout (pthread_t, an opaque type to cffi, is
 *     declared for it by native/pthread_h.py);
 *   - every function static: the .c files under native/src are compiled into the shim's
 *     one translation unit (after the declaration modules native/<header>_h.py, whose
 *     includes, feature flags and stand-ins they use), so nothing but the module's init
 *     is exported from the shared object (the test hook jn_accept_gap_us aside). They are not
 *     standalone translation units.
 */
#ifndef JANUS_NET_H
#define JANUS_NET_H

#include <pthread.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

/* ---- cffi cdef begin ---- */

/* === The owned-descriptor cell (jn_desc.c) ===
   Every descriptor janus_net owns lives in one, from the instant the kernel hands it
   over until the one close. fd and the wake pair (read end, write end or -1) are -1
   when there is none; closing is set once, by close() or a hand-over; inflight counts
   the native calls using fd right now; accepting serialises accept attempts of this
   process's threads; refs counts who keeps the cell's memory (see jn_desc_hold);
   collected says the cell's collection closed an fd its owner had not (the owner's
   __del__ warns); acceptor_state says a thread is inside accept(2) on fd, acceptor is
   that thread (see jn_desc_kick); pid is the process that made the cell (see
   jn_desc_mine); port is a listener's bound port whose address Python has not built
   yet (0: none; only Python reads and writes it, janus_net/_sockets/server.py: in the
   struct's padding, it costs a listener no byte where a Python int cost 32). */
struct jn_desc {
    int fd;
    int wake[2];
    int inflight;
    int closing;
    int accepting;
    int refs;
    int collected;
    int acceptor_state;
    pthread_t acceptor;
    int pid;
    int port;
};

/* jn_desc_wait's result: the socket's revents, plus this bit when the wait ended
   because the object is being closed (its wake fd fired, or it was closed already)... */
#define JN_WAIT_CLOSED 0x10000
/* ... and this bit when the interpreter's signal wakeup fd (the wait's sig_fd) fired. */
#define JN_WAIT_SIGNAL 0x20000
/* jn_desc_close's result bits. */
#define JN_CLOSE_FIRST 1
#define JN_CLOSE_FINISH 2

static struct jn_desc *jn_desc_new(void);
static void jn_desc_free(struct jn_desc *);
static void jn_desc_hold(struct jn_desc *);
static void jn_desc_unhold(struct jn_desc *);
static int jn_desc_close(struct jn_desc *);
static int jn_desc_finish(struct jn_desc *);
static int jn_desc_close_now(struct jn_desc *);
static void jn_desc_forget(struct jn_desc *);
static int jn_desc_detach(struct jn_desc *);
static void jn_desc_mine(struct jn_desc *);
static int jn_desc_make_wake(struct jn_desc *);
static int jn_desc_wait(struct jn_desc *, int, int, int, int, int);
static int jn_desc_socket(struct jn_desc *, int, int, int);
static int jn_desc_accept(struct jn_desc *, struct sockaddr *, socklen_t *, int, struct jn_desc *, int *);
static void jn_desc_kick(struct jn_desc *);
/* Test hook (janus_net.testing.accept_gap): microseconds slept between the readiness
   check and accept(2), so another holder of the listener can take the connection there. */
extern int jn_accept_gap_us;
static int jn_desc_adopt(struct jn_desc *, int);
static int jn_desc_openat(struct jn_desc *, int, const char *, int, int);
static int jn_desc_take(struct jn_desc *, int *);
static ssize_t jn_desc_sendto(struct jn_desc *, const void *, size_t, int, const struct sockaddr *, socklen_t);
static ssize_t jn_desc_recvfrom(struct jn_desc *, void *, size_t, int, struct sockaddr *, socklen_t *);
static ssize_t jn_desc_send(struct jn_desc *, const void *, size_t, int);
static ssize_t jn_desc_recv(struct jn_desc *, void *, size_t, int);
static int jn_desc_sendmmsg(struct jn_desc *, struct mmsghdr *, unsigned int, int);
static int jn_desc_recvmmsg(struct jn_desc *, struct mmsghdr *, unsigned int, int);
static ssize_t jn_desc_sendmsg(struct jn_desc *, const struct msghdr *, int);
static ssize_t jn_desc_sendmsg_rights(struct jn_desc *, const struct msghdr *, int, struct jn_desc **, int *, int,
                                      int *);
static ssize_t jn_desc_recvmsg(struct jn_desc *, struct msghdr *, int);
static int jn_desc_getsockopt(struct jn_desc *, int, int, void *, socklen_t *);
static int jn_desc_shutdown(struct jn_desc *, int);

/* === Wake pairs and the process's pid (jn_wake.c) ===
   A context's (or the wakeup pipe's) cell is int[4]: read fd, write fd, cancelled, pid. */
static int jn_waker_new(int *);
static int jn_waker_signal_cell(int *);
static void jn_waker_close(int *);
static void jn_waker_cancel(int *);
static int jn_wakeup_new(int *);
/* Move what janus_net's wakeup pipe (read end) holds to another wakeup fd (its write
   end; -1: drop the bytes); returns the bytes moved. */
static int jn_wakeup_forward(int, int);
static int jn_self_pid(void);
/* poll(2) whose last entry is the interpreter's wakeup fd, emptied when it fired and
   the last argument says it is janus_net's own. */
static int jn_poll_wakeup(struct pollfd *, unsigned long, int, int);

/* === The listen/bind step sequence (jn_steps.c) === */
#define JN_STEPS_MAX_OPTS 8

/* One setsockopt step: an int option (every option listen/bind set is one). */
struct jn_sockopt {
    int level;
    int name;
    int value;
};

/* Built once per (family, options) by the Python side and shared between calls:
   jn_steps only reads it. */
struct jn_steps_plan {
    int family;
    int type;
    int protocol;
    int backlog;
    int nopts;
    struct jn_sockopt opts[JN_STEPS_MAX_OPTS];
};

/* Per call: the owned-descriptor cell the new fd goes into, where the sequence
   stopped, the deadline of a stock Context, and getsockname's answer. */
struct jn_steps_io {
    struct jn_desc *desc;
    int at;
    int port;
    int has_deadline;
    int expired;
    double deadline;
    socklen_t namelen;
    struct sockaddr_storage name;
};

static int jn_steps(const struct jn_steps_plan *plan, struct jn_steps_io *io, const struct sockaddr *sa,
                    socklen_t salen, int start, int stop);

/* === The descriptors of `janus-net run` (jn_process.c, jn_spawn.c) === */
/* pipe2(O_CLOEXEC | O_NONBLOCK) into two cells: read end, write end. */
static int jn_desc_pipe(struct jn_desc *, struct jn_desc *);
/* fcntl(fd, F_DUPFD_CLOEXEC, low) into a cell: a close-on-exec copy numbered at least low. */
static int jn_desc_dup_above(struct jn_desc *, int, int);
/* pid, path, argv, envp (NULL-terminated), dup2 sources and targets (count), signals to default (count),
   the signal the child gets when its parent dies (0: none); the child runs in its own process group. */
static int jn_spawn(pid_t *, const char *, char *const[], char *const[], const int *, const int *, int, const int *,
                    int, int);

/* === Received descriptors (jn_control.c) === */
/* A recvmsg control buffer big enough for one SCM_RIGHTS message of JN_SCM_MAX_FD fds. */
static const int JN_RIGHTS_CONTROL_SIZE;
static void jn_rights_close(char *);
/* Close the n descriptors in slots (each slot becomes -1 first); returns how many were open. */
static int jn_slots_close(int *, int);

/* === Landlock (jn_landlock.c) ===
   Only the fields janus_net sets, in the kernel's stable UAPI layout (checked against
   <linux/landlock.h> where it declares them). */
struct jn_landlock_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
};
struct jn_landlock_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
};

static int jn_landlock_create_ruleset(struct jn_desc *, const struct jn_landlock_ruleset_attr *, size_t, uint32_t);
static int jn_landlock_add_net_port_rule(int, const struct jn_landlock_net_port_attr *);
static int jn_landlock_restrict_self(int, uint32_t);
static int jn_set_no_new_privs(void);

/* === The seccomp filter beside the Landlock ruleset (jn_seccomp.c) === */
static int jn_seccomp_action_avail(unsigned int);
static int jn_seccomp_set_filter(unsigned int, struct sock_fprog *);

/* === Which file a unix socket is bound to (jn_unix_diag.c) === */
/* The size of the request jn_udiag_request lays out. */
static const int JN_UDIAG_REQUEST_SIZE;
/* What jn_udiag_scan found in one reply buffer. */
#define JN_UDIAG_MORE 0
#define JN_UDIAG_FOUND 1
#define JN_UDIAG_DONE 2
#define JN_UDIAG_ERROR 3
static int jn_udiag_request(void *, unsigned int, int);
static int jn_udiag_scan(const void *, size_t, unsigned int, unsigned long long, int, unsigned int *,
                         unsigned long long *, int *);

/* === Entering a network namespace (jn_netns.c) === */
static int jn_open_namespace(const char *);

/* === One datagram in, with its source (jn_datagram.c) ===
   The memory a plain receive reuses, one caller at a time: the data buffer (cap bytes),
   the source's sockaddr_storage (sa) and its length, and key: an IPv4 source's first
   8 bytes (family, port, address) read as one integer, the key of the decoded-source
   cache; 0 for any other source. Written by jn_desc_receive. */
struct jn_rx {
    uint64_t key;
    char *buf;
    ssize_t cap;
    struct sockaddr *sa;
    socklen_t len;
};
/* jn_desc_receive's answer when the size asked is negative or more than rx->cap: no
   syscall was made (the caller brings a bigger buffer). */
static const int JN_RX_SIZE;
static ssize_t jn_desc_receive(struct jn_desc *, struct jn_rx *, ssize_t);
/* sendto an encoded IPv4 or IPv6 sockaddr, its length read from its family, with
   MSG_NOSIGNAL | MSG_DONTWAIT; JN_SEND_CHECK without a syscall when the sockaddr is
   not IP or its port is 0 (Python's checks raise the error). */
static const int JN_SEND_CHECK;
static ssize_t jn_desc_send_ip(struct jn_desc *, const void *, size_t, const struct sockaddr *);
/* === Many datagrams in, with what they have in common (jn_datagram.c) ===
   A receive_many batch's headers (msgs, n of them) and their state before any call
   (pristine), restored before each recvmmsg; after one that got datagrams, length is
   the byte count every one of them has (-1 if they differ) and key the one IPv4
   source key (as struct jn_rx's) they all share (0 if they differ or are not IPv4). */
struct jn_rxm {
    struct mmsghdr *msgs;
    const struct mmsghdr *pristine;
    int64_t length;
    uint64_t key;
};
static int jn_desc_receive_many(struct jn_desc *, struct jn_rxm *, unsigned int);

/* ---- cffi cdef end ---- */

#endif /* JANUS_NET_H */
