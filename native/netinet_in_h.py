"""Declarations from <netinet/in.h>: IPv4/IPv6 socket addresses and IP-level options."""

INCLUDES = """
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
"""

FUNCTIONS = ""

CUSTOMIZATIONS = ""
