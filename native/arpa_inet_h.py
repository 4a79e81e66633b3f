"""Declarations from <arpa/inet.h>: byte-order conversion for ports and flow labels."""

INCLUDES = """
#include <arpa/inet.h>
"""

TYPES = ""

FUNCTIONS = """
uint16_t htons(uint16_t);
uint16_t ntohs(uint16_t);
uint32_t htonl(uint32_t);
uint32_t ntohl(uint32_t);
"""

CUSTOMIZATIONS = ""
