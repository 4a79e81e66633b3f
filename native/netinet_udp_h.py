"""Declarations from <netinet/udp.h>: UDP segmentation offload (UDP_SEGMENT, GSO) and UDP_GRO."""

INCLUDES = """
#include <netinet/ip.h>
#include <netinet/udp.h>
"""

TYPES = """
/* SOL_UDP is the option level of UDP_SEGMENT/UDP_GRO; where a libc lacks the name
   it is IPPROTO_UDP, which is what the kernel compares it with. */
static const int JN_SOL_UDP;
/* UDP_SEGMENT (a send's segment size, as a socket option or a control message) and
   UDP_GRO (receive coalesced datagrams with their segment size); 0 without. */
static const int JN_HAS_UDP_SEGMENT;
static const int JN_UDP_SEGMENT;
static const int JN_HAS_UDP_GRO;
static const int JN_UDP_GRO;
/* Segments one UDP_SEGMENT send may carry (the kernel's UDP_MAX_SEGMENTS, which no
   libc header exports): 64 from Linux 4.18, 128 on newer kernels; the smaller
   number is the one every kernel accepts. */
static const int JN_UDP_MAX_SEGMENTS;
/* The most payload one UDP send can carry: the 16-bit IPv4 total length less the IP
   and UDP headers (65,507), and the 16-bit IPv6 payload length less the UDP header
   (65,527; the IPv6 header is not counted in it). */
static const int JN_UDP_MAX_PAYLOAD_IP4;
static const int JN_UDP_MAX_PAYLOAD_IP6;
"""

FUNCTIONS = ""

CUSTOMIZATIONS = """
#ifdef SOL_UDP
static const int JN_SOL_UDP = SOL_UDP;
#else
static const int JN_SOL_UDP = IPPROTO_UDP;
#endif

#ifdef UDP_SEGMENT
static const int JN_HAS_UDP_SEGMENT = 1;
static const int JN_UDP_SEGMENT = UDP_SEGMENT;
#else
static const int JN_HAS_UDP_SEGMENT = 0;
static const int JN_UDP_SEGMENT = 0;
#endif

#ifdef UDP_GRO
static const int JN_HAS_UDP_GRO = 1;
static const int JN_UDP_GRO = UDP_GRO;
#else
static const int JN_HAS_UDP_GRO = 0;
static const int JN_UDP_GRO = 0;
#endif

static const int JN_UDP_MAX_PAYLOAD_IP4 = IP_MAXPACKET - sizeof(struct ip) - sizeof(struct udphdr);
static const int JN_UDP_MAX_PAYLOAD_IP6 = IP_MAXPACKET - sizeof(struct udphdr);

#ifdef UDP_MAX_SEGMENTS
static const int JN_UDP_MAX_SEGMENTS = UDP_MAX_SEGMENTS;
#else
static const int JN_UDP_MAX_SEGMENTS = 64;
#endif
"""
