"""Declarations for the socket options servers need (DESIGN §16), from <netinet/in.h>, <netinet/tcp.h>,
<sys/socket.h> and <linux/filter.h>.

Each option is a JN_* constant that is 0 where the platform's headers lack it, so
janus_net can refuse it (OptionUnsupported) before a socket exists. The classic BPF
pieces (struct sock_filter, struct sock_fprog, the opcode classes and SKF_AD_CPU) are
what `steer="cpu"` builds its two-instruction program from.
"""

INCLUDES = """
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#if defined(__linux__)
#include <linux/filter.h>
#endif
"""

TYPES = """
struct sock_filter {
    uint16_t code;
    uint8_t jt;
    uint8_t jf;
    uint32_t k;
    ...;
};
struct sock_fprog {
    unsigned short len;
    struct sock_filter *filter;
    ...;
};

static const int JN_IP_FREEBIND;
static const int JN_IPV6_FREEBIND;
static const int JN_IP_TRANSPARENT;
static const int JN_IPV6_TRANSPARENT;
static const int JN_SO_BINDTODEVICE;
static const int JN_TCP_FASTOPEN;
static const int JN_TCP_DEFER_ACCEPT;
static const int JN_SO_INCOMING_CPU;
static const int JN_SO_ATTACH_REUSEPORT_CBPF;
/* Classic BPF: 1 where <linux/filter.h> has what a CPU-steering program needs. */
static const int JN_HAS_CBPF;
static const int JN_BPF_LD;
static const int JN_BPF_W;
static const int JN_BPF_ABS;
static const int JN_BPF_RET;
static const int JN_BPF_A;
static const int JN_SKF_AD_OFF;
static const int JN_SKF_AD_CPU;
"""

FUNCTIONS = ""

CUSTOMIZATIONS = """
#ifdef IP_FREEBIND
static const int JN_IP_FREEBIND = IP_FREEBIND;
#else
static const int JN_IP_FREEBIND = 0;
#endif
#ifdef IPV6_FREEBIND
static const int JN_IPV6_FREEBIND = IPV6_FREEBIND;
#else
static const int JN_IPV6_FREEBIND = 0;
#endif
#ifdef IP_TRANSPARENT
static const int JN_IP_TRANSPARENT = IP_TRANSPARENT;
#else
static const int JN_IP_TRANSPARENT = 0;
#endif
#ifdef IPV6_TRANSPARENT
static const int JN_IPV6_TRANSPARENT = IPV6_TRANSPARENT;
#else
static const int JN_IPV6_TRANSPARENT = 0;
#endif
#ifdef SO_BINDTODEVICE
static const int JN_SO_BINDTODEVICE = SO_BINDTODEVICE;
#else
static const int JN_SO_BINDTODEVICE = 0;
#endif
#ifdef TCP_FASTOPEN
static const int JN_TCP_FASTOPEN = TCP_FASTOPEN;
#else
static const int JN_TCP_FASTOPEN = 0;
#endif
#ifdef TCP_DEFER_ACCEPT
static const int JN_TCP_DEFER_ACCEPT = TCP_DEFER_ACCEPT;
#else
static const int JN_TCP_DEFER_ACCEPT = 0;
#endif
#ifdef SO_INCOMING_CPU
static const int JN_SO_INCOMING_CPU = SO_INCOMING_CPU;
#else
static const int JN_SO_INCOMING_CPU = 0;
#endif
#ifdef SO_ATTACH_REUSEPORT_CBPF
static const int JN_SO_ATTACH_REUSEPORT_CBPF = SO_ATTACH_REUSEPORT_CBPF;
#else
static const int JN_SO_ATTACH_REUSEPORT_CBPF = 0;
#endif
#if defined(__linux__) && defined(SKF_AD_CPU)
static const int JN_HAS_CBPF = 1;
static const int JN_BPF_LD = BPF_LD;
static const int JN_BPF_W = BPF_W;
static const int JN_BPF_ABS = BPF_ABS;
static const int JN_BPF_RET = BPF_RET;
static const int JN_BPF_A = BPF_A;
static const int JN_SKF_AD_OFF = SKF_AD_OFF;
static const int JN_SKF_AD_CPU = SKF_AD_CPU;
#else
static const int JN_HAS_CBPF = 0;
struct sock_filter { uint16_t code; uint8_t jt; uint8_t jf; uint32_t k; };
struct sock_fprog { unsigned short len; struct sock_filter *filter; };
static const int JN_BPF_LD = 0;
static const int JN_BPF_W = 0;
static const int JN_BPF_ABS = 0;
static const int JN_BPF_RET = 0;
static const int JN_BPF_A = 0;
static const int JN_SKF_AD_OFF = 0;
static const int JN_SKF_AD_CPU = 0;
#endif
"""
