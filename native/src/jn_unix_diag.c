/* jn_unix_diag.c -- which sockets are bound to which file: the request to the kernel's
 * sock_diag and the walk of its replies (DESIGN section 7).
 *
 * The kernel lists every unix socket of the caller's network namespace with the inode
 * of the file it is bound to (UDIAG_SHOW_VFS). janus_net asks it two things: is any
 * socket bound to this file (a file no socket holds is stale), and which file is this
 * socket of mine bound to (its identity, taken from the socket, not from a path someone
 * may have swapped).
 *
 * The two helpers only lay out the request and walk the reply buffer: they make no
 * syscall and decide nothing (the netlink macros NLMSG_* and RTA_* are the compiler's,
 * so no alignment is computed in Python). Made where JN_HAS_UNIX_DIAG
 * (native/linux_unix_diag_h.py) says the platform has unix_diag. Part of the shim's one
 * translation unit (see janus_net.h).
 */
#include <errno.h>
#include <string.h>

#include "janus_net.h"

#if JN_HAS_UNIX_DIAG
struct jn_udiag_req {
    struct nlmsghdr nlh;
    struct unix_diag_req req;
};
static const int JN_UDIAG_REQUEST_SIZE = sizeof(struct jn_udiag_req);

/* The kernel reports a superblock's device in its own encoding (include/linux/kdev_t.h:
   MINORBITS 20), stat() in the userspace one (makedev). */
static unsigned long long jn_kdev_to_dev(__u32 kdev)
{
    return makedev(kdev >> 20, kdev & ((1U << 20) - 1));
}

/* Lay out a SOCK_DIAG_BY_FAMILY request for AF_UNIX with UDIAG_SHOW_VFS into buf:
   socket_ino != 0 asks for that one socket (by the inode fstat gives the socket),
   0 asks for a dump of every unix socket in every state. Returns the length to send. */
static int jn_udiag_request(void *buf, unsigned int socket_ino, int dump)
{
    struct jn_udiag_req *r = buf;
    memset(r, 0, sizeof *r);
    r->nlh.nlmsg_len = NLMSG_LENGTH(sizeof r->req);
    r->nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    r->nlh.nlmsg_flags = NLM_F_REQUEST | (dump ? NLM_F_DUMP : 0);
    r->req.sdiag_family = AF_UNIX;
    r->req.udiag_states = dump ? ~0U : 0;
    r->req.udiag_ino = socket_ino;
    r->req.udiag_show = UDIAG_SHOW_VFS;
    r->req.udiag_cookie[0] = ~0U; /* INET_DIAG_NOCOOKIE: any socket with that inode */
    r->req.udiag_cookie[1] = ~0U;
    return (int)r->nlh.nlmsg_len;
}

/* Walk one recv() buffer of replies. With any == 0, look for a socket bound to the
   file (want_ino, want_dev) (want_ino is the low 32 bits: the kernel reports no more);
   with any != 0, take the first socket that is bound to a file. FOUND fills vfs_ino
   and vfs_dev; ERROR fills error with the kernel's errno; DONE ends a dump; MORE: read
   the next buffer (a dump) or nothing matched (one socket). */
/* NLMSG_OK with the comparison's types made explicit: the kernel's macro compares the __u32
   nlmsg_len with the int remainder, which clang reports under -Wextra (gcc does not, the macro
   being a system header's). rem is checked non-negative first, so the cast keeps its value. */
static int jn_nlmsg_ok(const struct nlmsghdr *h, int rem)
{
    return rem >= (int)sizeof *h && h->nlmsg_len >= sizeof *h && h->nlmsg_len <= (unsigned int)rem;
}

static int jn_udiag_scan(const void *buf, size_t len, unsigned int want_ino, unsigned long long want_dev, int any,
                         unsigned int *vfs_ino, unsigned long long *vfs_dev, int *error)
{
    const struct nlmsghdr *h = buf;
    int rem = len > 0x7fffffff ? 0x7fffffff : (int)len;
    for (; jn_nlmsg_ok(h, rem); h = NLMSG_NEXT(h, rem)) {
        if (h->nlmsg_type == NLMSG_DONE)
            return JN_UDIAG_DONE;
        if (h->nlmsg_type == NLMSG_ERROR) {
            const struct nlmsgerr *e = NLMSG_DATA(h);
            *error = h->nlmsg_len >= NLMSG_LENGTH(sizeof *e) ? -e->error : EPROTO;
            return JN_UDIAG_ERROR;
        }
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_SPACE(sizeof(struct unix_diag_msg)))
            continue;
        const struct rtattr *a =
            (const struct rtattr *)((const char *)NLMSG_DATA(h) + NLMSG_ALIGN(sizeof(struct unix_diag_msg)));
        int alen = (int)(h->nlmsg_len - NLMSG_SPACE(sizeof(struct unix_diag_msg)));
        for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
            if (a->rta_type != UNIX_DIAG_VFS || RTA_PAYLOAD(a) < sizeof(struct unix_diag_vfs))
                continue;
            const struct unix_diag_vfs *v = RTA_DATA(a);
            unsigned long long dev = jn_kdev_to_dev(v->udiag_vfs_dev);
            if (any || (v->udiag_vfs_ino == want_ino && dev == want_dev)) {
                *vfs_ino = v->udiag_vfs_ino;
                *vfs_dev = dev;
                return JN_UDIAG_FOUND;
            }
        }
    }
    return JN_UDIAG_MORE;
}
#else
static const int JN_UDIAG_REQUEST_SIZE = 0;

static int jn_udiag_request(void *buf, unsigned int socket_ino, int dump)
{
    (void)buf;
    (void)socket_ino;
    (void)dump;
    return 0;
}

static int jn_udiag_scan(const void *buf, size_t len, unsigned int want_ino, unsigned long long want_dev, int any,
                         unsigned int *vfs_ino, unsigned long long *vfs_dev, int *error)
{
    (void)buf;
    (void)len;
    (void)want_ino;
    (void)want_dev;
    (void)any;
    (void)vfs_ino;
    (void)vfs_dev;
    *error = ENOSYS;
    return JN_UDIAG_ERROR;
}
#endif
