/* jn_datagram.c -- one datagram in, with its source, in one native call (Socket.receive).
 *
 * The per-packet receive is the path where Python around the syscall costs as much as
 * the syscall (docs/performance.md): jn_desc_recvfrom's six arguments, resetting the
 * source length before the call, reading it after and keying the source. Here the
 * memory a receive reuses is one struct (struct jn_rx), so the call takes three
 * arguments and does the rest in C: the length is reset, MSG_DONTWAIT is the flag, and
 * an IPv4 source's key is written for the Python side to read as one integer.
 *
 * A raw call (DESIGN section 2): recvfrom once, never retried, no errno mapped; -1 with
 * errno on failure, EINTR and EAGAIN included, and Python's one retry loop decides. It
 * enters and leaves the descriptor cell as every jn_desc_* call does (jn_desc.c). Part
 * of the shim's one translation unit, after jn_desc.c (see janus_net.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "janus_net.h"

/* The first 8 bytes of a sockaddr_in cover its family, port and address where the
   address ends by byte 8 (every ABI janus_net knows; platform.IP4_KEY_OK says the same). */
#define JN_IP4_KEY_OK (offsetof(struct sockaddr_in, sin_addr) + sizeof(struct in_addr) <= sizeof(uint64_t))

static const int JN_RX_SIZE = -2;

static ssize_t jn_desc_receive(struct jn_desc *d, struct jn_rx *rx, ssize_t n)
{
    if (n < 0 || n > rx->cap)
        return JN_RX_SIZE;
    rx->key = 0;
    rx->len = sizeof(struct sockaddr_storage);
    int fd = jn_desc_enter(d);
    if (fd < 0)
        return -1;
    ssize_t rc = recvfrom(fd, rx->buf, (size_t)n, MSG_DONTWAIT, rx->sa, &rx->len);
    int saved = errno;
    jn_desc_leave(d);
    if (rc >= 0 && JN_IP4_KEY_OK && rx->len == sizeof(struct sockaddr_in) && rx->sa->sa_family == AF_INET)
        memcpy(&rx->key, rx->sa, sizeof rx->key);
    errno = saved;
    return rc;
}

static const int JN_SEND_CHECK = -2;

static ssize_t jn_desc_send_ip(struct jn_desc *d, const void *b, size_t n, const struct sockaddr *sa)
{
    socklen_t len;
    if (sa->sa_family == AF_INET && ((const struct sockaddr_in *)sa)->sin_port != 0)
        len = sizeof(struct sockaddr_in);
    else if (sa->sa_family == AF_INET6 && ((const struct sockaddr_in6 *)sa)->sin6_port != 0)
        len = sizeof(struct sockaddr_in6);
    else
        return JN_SEND_CHECK;
    JN_DESC_CALL(ssize_t, sendto(fd, b, n, JN_MSG_NOSIGNAL | MSG_DONTWAIT, sa, len))
}

/* recvmmsg of n datagrams (MSG_DONTWAIT) into rx->msgs, restored from rx->pristine
   first (the kernel rewrote msg_namelen, msg_flags and msg_len last time); then, so
   that Python reads two integers instead of two fields per datagram in the usual case
   (a stream from one peer in datagrams of one size), what every datagram received has
   in common. A raw call like the others: -1 with errno, nothing retried or mapped. */
static int jn_desc_receive_many(struct jn_desc *d, struct jn_rxm *rx, unsigned int n)
{
    memcpy(rx->msgs, rx->pristine, n * sizeof *rx->msgs);
    rx->length = -1;
    rx->key = 0;
    int fd = jn_desc_enter(d);
    if (fd < 0)
        return -1;
    int rc = jn_recvmmsg(fd, rx->msgs, n, MSG_DONTWAIT);
    int saved = errno;
    jn_desc_leave(d);
    if (rc > 0) {
        const struct mmsghdr *m = rx->msgs;
        unsigned int length = m[0].msg_len;
        int i = 1;
        while (i < rc && m[i].msg_len == length)
            i++;
        if (i == rc)
            rx->length = length;
        if (JN_IP4_KEY_OK) {
            uint64_t key = 0, other;
            for (i = 0; i < rc; i++) {
                const struct sockaddr *sa = m[i].msg_hdr.msg_name;
                if (m[i].msg_hdr.msg_namelen != sizeof(struct sockaddr_in) || sa->sa_family != AF_INET)
                    break;
                memcpy(&other, sa, sizeof other);
                if (i == 0)
                    key = other;
                else if (other != key)
                    break;
            }
            if (i == rc)
                rx->key = key;
        }
    }
    errno = saved;
    return rc;
}
