"""Declarations from <netinet/in.h>: IPv4/IPv6 socket addresses and IP-level options."""

INCLUDES = """
/* Darwin declares struct in6_pktinfo always but IPV6_RECVPKTINFO / IPV6_PKTINFO of RFC 3542
   only with this macro (RFC 2292's older values otherwise); it must precede the first
   <netinet/in.h>, which is this one (sys/socket.h does not include it). */
#if defined(__APPLE__) && !defined(__APPLE_USE_RFC_3542)
#define __APPLE_USE_RFC_3542 1
#endif
#include <netinet/in.h>
"""

TYPES = """
typedef int... in_port_t;
typedef int... in_addr_t;

struct in_addr {
    in_addr_t s_addr;
    ...;
};

struct in6_addr {
    unsigned char s6_addr[16];
    ...;
};

struct sockaddr_in {
    sa_family_t sin_family;
    in_port_t sin_port;
    struct in_addr sin_addr;
    ...;
};

struct sockaddr_in6 {
    sa_family_t sin6_family;
    in_port_t sin6_port;
    uint32_t sin6_flowinfo;
    struct in6_addr sin6_addr;
    uint32_t sin6_scope_id;
    ...;
};

static const int IPPROTO_IP;
static const int IPPROTO_IPV6;
static const int IPPROTO_TCP;
static const int IPPROTO_UDP;
static const int IPV6_V6ONLY;

/* The destination address of a received datagram, and the source of a sent one
   (IP_PKTINFO / IPV6_RECVPKTINFO, IPV6_PKTINFO). Where the platform has no such
   thing the flags are 0 and the structs are stand-ins that are never used. */
struct in_pktinfo {
    int ipi_ifindex;
    struct in_addr ipi_spec_dst;
    struct in_addr ipi_addr;
    ...;
};

struct in6_pktinfo {
    struct in6_addr ipi6_addr;
    unsigned int ipi6_ifindex;
    ...;
};

static const int JN_HAS_IP_PKTINFO;
static const int JN_IP_PKTINFO;
static const int JN_HAS_IPV6_PKTINFO;
static const int JN_IPV6_RECVPKTINFO;
static const int JN_IPV6_PKTINFO;
"""

FUNCTIONS = ""

CUSTOMIZATIONS = """
#ifdef IP_PKTINFO
static const int JN_HAS_IP_PKTINFO = 1;
static const int JN_IP_PKTINFO = IP_PKTINFO;
#else
static const int JN_HAS_IP_PKTINFO = 0;
static const int JN_IP_PKTINFO = 0;
struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst; struct in_addr ipi_addr; };
#endif

#if defined(IPV6_RECVPKTINFO) && defined(IPV6_PKTINFO)
static const int JN_HAS_IPV6_PKTINFO = 1;
static const int JN_IPV6_RECVPKTINFO = IPV6_RECVPKTINFO;
static const int JN_IPV6_PKTINFO = IPV6_PKTINFO;
#else
static const int JN_HAS_IPV6_PKTINFO = 0;
static const int JN_IPV6_RECVPKTINFO = 0;
static const int JN_IPV6_PKTINFO = 0;
struct in6_pktinfo { struct in6_addr ipi6_addr; unsigned int ipi6_ifindex; };
#endif
"""
