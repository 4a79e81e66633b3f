/* The C baseline for `make bench`: the same syscalls janus_net makes, with no
 * interpreter in the way -- the physical limit of this machine for each workload.
 *
 *   bench listen N        N x (socket+SO_REUSEADDR+bind 127.0.0.1:0+listen+getsockname+close)
 *   bench accept N        a forked client (see run_client) connects; we accept4+close N times
 *   bench client PORT     that client alone, for the Python servers (runs until killed)
 *   bench udp N           N bursts of 32: 32 sendto then 32 recvfrom, 64-byte datagrams
 *   bench udp_mmsg N      N bursts of 32: one sendmmsg then recvmmsg until 32 arrived
 *   bench segmented N     N bursts of 54 1200-byte datagrams: one sendmsg with UDP_SEGMENT
 *                         (64,800 bytes), then recvmsg on a UDP_GRO socket until 54 arrived
 *
 * Prints one line: "<operations> <wall seconds> <cpu seconds>" (operations: cycles,
 * connections, or datagrams), timed around the measured loop only: wall time with
 * CLOCK_MONOTONIC, CPU time of this process with CLOCK_PROCESS_CPUTIME_ID.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BURST 32
#define PAYLOAD 64

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static double clock_seconds(clockid_t which)
{
    struct timespec ts;
    clock_gettime(which, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU time of this process (not of a forked client) for the measured loop. */
static double cpu_start, cpu_elapsed;

static double now(void)
{
    double cpu = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
    if (cpu_start == 0)
        cpu_start = cpu;
    else
        cpu_elapsed = cpu - cpu_start;
    return clock_seconds(CLOCK_MONOTONIC);
}

static struct sockaddr_in loopback(void)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

static int listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt");
    struct sockaddr_in sa = loopback();
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("bind");
    if (listen(fd, 128) < 0)
        die("listen");
    return fd;
}

static double run_listen(long n)
{
    double t0 = now();
    for (long i = 0; i < n; i++) {
        int fd = listener();
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
            die("getsockname");
        close(fd);
    }
    return now() - t0;
}

/* The accept workload's client, shared by every implementation under test (the
 * bench script runs `bench client PORT` against janus_net and stdlib servers): it
 * keeps WINDOW connections in flight, so the server always has one to accept but the
 * backlog never overflows (an overflow drops a SYN and stalls the client for a whole
 * retransmit second). For each connection it waits for the server's close, then
 * closes with an RST, so no side is left in TIME_WAIT and a long run cannot run out
 * of ephemeral ports. SO_LINGER {1, 0} is set right after connect, not just before
 * close: the server closes first (FIN_WAIT_2), and the connections still in flight
 * when the bench kills this process are then reset by the kernel's exit-time close
 * too; with a plain close they answered the server's FIN with a FIN and left the
 * server's side in TIME_WAIT (5-6 per run). Runs until killed or the server goes away. */
#define WINDOW 8

static int connect_to(const struct sockaddr_in *sa)
{
    static const struct linger rst = {1, 0};
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0)
        return -1;
    if (setsockopt(c, SOL_SOCKET, SO_LINGER, &rst, sizeof rst) < 0 ||
        connect(c, (const struct sockaddr *)sa, sizeof *sa) < 0) {
        close(c);
        return -1;
    }
    return c;
}

static int run_client(int port)
{
    struct sockaddr_in sa = loopback();
    sa.sin_port = htons(port);
    int ring[WINDOW];
    for (int k = 0; k < WINDOW; k++)
        if ((ring[k] = connect_to(&sa)) < 0)
            return 0;
    for (int k = 0;; k = (k + 1) % WINDOW) {
        char byte;
        (void)read(ring[k], &byte, 1); /* 0 (EOF) once the server closed its side */
        close(ring[k]);                /* RST: SO_LINGER {1, 0} since connect */
        if ((ring[k] = connect_to(&sa)) < 0)
            return 0;
    }
}

static double run_accept(long n)
{
    int fd = listener();
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        die("getsockname");
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        close(fd);
        _exit(run_client(ntohs(sa.sin_port)));
    }
    double t0 = now();
    for (long i = 0; i < n; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int c = accept4(fd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            die("accept4");
        }
        close(c);
    }
    double elapsed = now() - t0;
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    close(fd);
    return elapsed;
}

static void udp_pair(int *a, int *b, struct sockaddr_in *dest)
{
    *a = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    *b = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (*a < 0 || *b < 0)
        die("socket");
    struct sockaddr_in sa = loopback();
    if (bind(*a, (struct sockaddr *)&sa, sizeof sa) < 0 || bind(*b, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("bind");
    socklen_t len = sizeof *dest;
    if (getsockname(*b, (struct sockaddr *)dest, &len) < 0)
        die("getsockname");
}

static double run_udp(long n)
{
    int a, b;
    struct sockaddr_in dest;
    udp_pair(&a, &b, &dest);
    char out[PAYLOAD], in[2048];
    memset(out, 'x', sizeof out);
    double t0 = now();
    for (long i = 0; i < n; i++) {
        for (int k = 0; k < BURST; k++)
            if (sendto(a, out, sizeof out, MSG_NOSIGNAL, (struct sockaddr *)&dest, sizeof dest) < 0)
                die("sendto");
        for (int k = 0; k < BURST; k++) {
            struct sockaddr_storage src;
            socklen_t slen = sizeof src;
            if (recvfrom(b, in, sizeof in, 0, (struct sockaddr *)&src, &slen) < 0)
                die("recvfrom");
        }
    }
    double elapsed = now() - t0;
    close(a);
    close(b);
    return elapsed;
}

static double run_udp_mmsg(long n)
{
    int a, b;
    struct sockaddr_in dest;
    udp_pair(&a, &b, &dest);
    static char out[BURST][PAYLOAD], in[BURST][2048];
    static struct sockaddr_storage src[BURST];
    struct iovec siov[BURST], riov[BURST];
    struct mmsghdr smsg[BURST], rmsg[BURST];
    memset(out, 'x', sizeof out);
    memset(smsg, 0, sizeof smsg);
    for (int k = 0; k < BURST; k++) {
        siov[k].iov_base = out[k];
        siov[k].iov_len = PAYLOAD;
        smsg[k].msg_hdr.msg_name = &dest;
        smsg[k].msg_hdr.msg_namelen = sizeof dest;
        smsg[k].msg_hdr.msg_iov = &siov[k];
        smsg[k].msg_hdr.msg_iovlen = 1;
        riov[k].iov_base = in[k];
        riov[k].iov_len = sizeof in[k];
    }
    double t0 = now();
    for (long i = 0; i < n; i++) {
        int sent = 0;
        while (sent < BURST) {
            int r = sendmmsg(a, smsg + sent, BURST - sent, MSG_NOSIGNAL);
            if (r < 0)
                die("sendmmsg");
            sent += r;
        }
        int got = 0;
        while (got < BURST) {
            /* As janus_net does: reset what the kernel overwrote, then one call. */
            memset(rmsg, 0, sizeof rmsg);
            for (int k = 0; k < BURST; k++) {
                rmsg[k].msg_hdr.msg_name = &src[k];
                rmsg[k].msg_hdr.msg_namelen = sizeof src[k];
                rmsg[k].msg_hdr.msg_iov = &riov[k];
                rmsg[k].msg_hdr.msg_iovlen = 1;
            }
            int r = recvmmsg(b, rmsg, BURST - got, MSG_WAITFORONE, NULL);
            if (r < 0)
                die("recvmmsg");
            got += r;
        }
    }
    double elapsed = now() - t0;
    close(a);
    close(b);
    return elapsed;
}

#define SEGMENT 1200
#define SEGMENTS 54

#if defined(UDP_SEGMENT) && defined(UDP_GRO)
static double run_segmented(long n)
{
    int a, b;
    struct sockaddr_in dest;
    udp_pair(&a, &b, &dest);
    int on = 1;
    if (setsockopt(b, SOL_UDP, UDP_GRO, &on, sizeof on) < 0)
        die("setsockopt UDP_GRO");
    static char out[SEGMENT * SEGMENTS], in[65535];
    memset(out, 'x', sizeof out);
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } sctl;
    union {
        char buf[CMSG_SPACE(sizeof(int)) * 4];
        struct cmsghdr align;
    } rctl;
    struct iovec siov = {out, sizeof out}, riov = {in, sizeof in};
    struct msghdr smsg, rmsg;
    memset(&smsg, 0, sizeof smsg);
    smsg.msg_name = &dest;
    smsg.msg_namelen = sizeof dest;
    smsg.msg_iov = &siov;
    smsg.msg_iovlen = 1;
    smsg.msg_control = sctl.buf;
    smsg.msg_controllen = sizeof sctl.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&smsg);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    *(uint16_t *)CMSG_DATA(c) = SEGMENT;
    double t0 = now();
    for (long i = 0; i < n; i++) {
        if (sendmsg(a, &smsg, MSG_NOSIGNAL) < 0)
            die("sendmsg UDP_SEGMENT");
        int got = 0;
        while (got < SEGMENTS) {
            struct sockaddr_storage src;
            memset(&rmsg, 0, sizeof rmsg);
            rmsg.msg_name = &src;
            rmsg.msg_namelen = sizeof src;
            rmsg.msg_iov = &riov;
            rmsg.msg_iovlen = 1;
            rmsg.msg_control = rctl.buf;
            rmsg.msg_controllen = sizeof rctl.buf;
            ssize_t r = recvmsg(b, &rmsg, 0);
            if (r < 0)
                die("recvmsg");
            int size = (int)r;
            for (struct cmsghdr *h = CMSG_FIRSTHDR(&rmsg); h; h = CMSG_NXTHDR(&rmsg, h))
                if (h->cmsg_level == SOL_UDP && h->cmsg_type == UDP_GRO)
                    memcpy(&size, CMSG_DATA(h), sizeof size);
            got += size > 0 ? (int)((r + size - 1) / size) : 1;
        }
    }
    double elapsed = now() - t0;
    close(a);
    close(b);
    return elapsed;
}
#else
static double run_segmented(long n)
{
    (void)n;
    fprintf(stderr, "no UDP_SEGMENT/UDP_GRO in these headers\n");
    exit(3);
}
#endif

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s listen|accept|udp|udp_mmsg|segmented N | client PORT\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[1], "client") == 0)
        return run_client(atoi(argv[2]));
    long n = atol(argv[2]);
    if (n <= 0) {
        fprintf(stderr, "N must be positive\n");
        return 2;
    }
    const char *w = argv[1];
    double elapsed;
    long ops = n;
    if (strcmp(w, "listen") == 0)
        elapsed = run_listen(n);
    else if (strcmp(w, "accept") == 0)
        elapsed = run_accept(n);
    else if (strcmp(w, "udp") == 0) {
        elapsed = run_udp(n);
        ops = n * BURST;
    } else if (strcmp(w, "udp_mmsg") == 0) {
        elapsed = run_udp_mmsg(n);
        ops = n * BURST;
    } else if (strcmp(w, "segmented") == 0) {
        elapsed = run_segmented(n);
        ops = n * SEGMENTS;
    } else {
        fprintf(stderr, "unknown workload %s\n", w);
        return 2;
    }
    printf("%ld %.9f %.9f\n", ops, elapsed, cpu_elapsed);
    return 0;
}
