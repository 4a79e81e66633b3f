"""Declarations for the seccomp filter `NetBind.enforce` installs beside its Landlock ruleset.

From <linux/seccomp.h>, <linux/filter.h> (the classic BPF opcodes), <linux/audit.h>
(AUDIT_ARCH_*), <linux/net.h> (SYS_SOCKET), <sys/syscall.h> and <netinet/in.h>.
The filter closes a gap of Landlock's network rules (DESIGN §14): they cover
IPPROTO_TCP sockets only, so an IPPROTO_MPTCP socket binds any port. The program
(built in `janus_net._policy.landlock` from these constants, never from numbers written in
Python) refuses socket(AF_INET/AF_INET6, ..., IPPROTO_MPTCP or IPPROTO_SMC) and
socket(AF_SMC, ...) (SMC too serves TCP clients from a socket that is not
IPPROTO_TCP), socketcall's
SYS_SOCKET where the architecture has socketcall (its arguments live in memory a
filter cannot read), io_uring_setup (an io_uring's IORING_OP_SOCKET makes sockets
without the socket syscall), and every syscall of another architecture's ABI
(compat and x32 numbers would bypass a filter written for the native ones).

``JN_SECCOMP_AUDIT_ARCH`` is the AUDIT_ARCH_* value of the architecture the shim was
compiled for, chosen by the compiler's own macros; 0 where the shim does not know it
(then no filter is built). A syscall this architecture lacks is -1. The struct
sock_filter / sock_fprog types come from native/linux_sockopts_h.py; the two seccomp(2)
calls are janus_net's (native/src/jn_seccomp.c), made where ``JN_AUDIT_ARCH`` is defined.
"""

INCLUDES = """
#if defined(__linux__)
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <linux/seccomp.h>
#include <linux/filter.h>
#include <linux/audit.h>
#include <linux/net.h>
#include <netinet/in.h>
#include <endian.h>
#endif
"""

TYPES = """
/* 1 where the shim can build and install the filter (Linux, seccomp(2), a known audit arch). */
static const int JN_HAS_SECCOMP;
static const unsigned int JN_SECCOMP_AUDIT_ARCH;
/* The x32 ABI's syscall-number bit (x86_64), 0 elsewhere. */
static const unsigned int JN_SECCOMP_X32_SYSCALL_BIT;
static const int JN_SECCOMP_NR_SOCKET;
static const int JN_SECCOMP_NR_SOCKETCALL;
static const int JN_SECCOMP_NR_IO_URING_SETUP;
static const int JN_SECCOMP_SYS_SOCKET;
static const int JN_IPPROTO_MPTCP;
/* SMC serves TCP clients from sockets Landlock's TCP rules do not see either. */
static const int JN_IPPROTO_SMC;
static const int JN_AF_SMC;
/* Offsets into struct seccomp_data; an argument's low 32 bits (the int the kernel reads). */
static const int JN_SECCOMP_DATA_NR;
static const int JN_SECCOMP_DATA_ARCH;
static const int JN_SECCOMP_DATA_ARG0_LO;
static const int JN_SECCOMP_DATA_ARG2_LO;
static const unsigned int JN_SECCOMP_RET_ALLOW;
static const unsigned int JN_SECCOMP_RET_ERRNO;
static const unsigned int JN_SECCOMP_RET_DATA;
static const int JN_SECCOMP_SET_MODE_FILTER;
static const int JN_SECCOMP_GET_ACTION_AVAIL;
static const unsigned int JN_SECCOMP_FILTER_FLAG_TSYNC;
static const int JN_BPF_JMP;
static const int JN_BPF_JEQ;
static const int JN_BPF_JGE;
static const int JN_BPF_K;
"""

FUNCTIONS = ""

CUSTOMIZATIONS = """
#if defined(__linux__) && defined(SYS_seccomp) && defined(SECCOMP_SET_MODE_FILTER) \\
    && defined(SECCOMP_GET_ACTION_AVAIL) && defined(SECCOMP_FILTER_FLAG_TSYNC)
#  if defined(__x86_64__) && !defined(__ILP32__)
#    define JN_AUDIT_ARCH AUDIT_ARCH_X86_64
#  elif defined(__i386__)
#    define JN_AUDIT_ARCH AUDIT_ARCH_I386
#  elif defined(__aarch64__) && !defined(__ILP32__)
#    define JN_AUDIT_ARCH AUDIT_ARCH_AARCH64
#  elif defined(__arm__) && defined(__ARMEL__)
#    define JN_AUDIT_ARCH AUDIT_ARCH_ARM
#  elif defined(__riscv) && __riscv_xlen == 64
#    define JN_AUDIT_ARCH AUDIT_ARCH_RISCV64
#  elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#    define JN_AUDIT_ARCH AUDIT_ARCH_PPC64LE
#  elif defined(__s390x__)
#    define JN_AUDIT_ARCH AUDIT_ARCH_S390X
#  elif defined(__loongarch64)
#    define JN_AUDIT_ARCH AUDIT_ARCH_LOONGARCH64
#  endif
#endif

#if defined(JN_AUDIT_ARCH)
static const int JN_HAS_SECCOMP = 1;
static const unsigned int JN_SECCOMP_AUDIT_ARCH = JN_AUDIT_ARCH;
#  if defined(__X32_SYSCALL_BIT)
static const unsigned int JN_SECCOMP_X32_SYSCALL_BIT = __X32_SYSCALL_BIT;
#  else
static const unsigned int JN_SECCOMP_X32_SYSCALL_BIT = 0;
#  endif
#  if defined(SYS_socket)
static const int JN_SECCOMP_NR_SOCKET = SYS_socket;
#  else
static const int JN_SECCOMP_NR_SOCKET = -1;
#  endif
#  if defined(SYS_socketcall)
static const int JN_SECCOMP_NR_SOCKETCALL = SYS_socketcall;
#  else
static const int JN_SECCOMP_NR_SOCKETCALL = -1;
#  endif
#  if defined(SYS_io_uring_setup)
static const int JN_SECCOMP_NR_IO_URING_SETUP = SYS_io_uring_setup;
#  else
static const int JN_SECCOMP_NR_IO_URING_SETUP = -1;
#  endif
static const int JN_SECCOMP_SYS_SOCKET = SYS_SOCKET;
#  if defined(IPPROTO_MPTCP)
static const int JN_IPPROTO_MPTCP = IPPROTO_MPTCP;
#  else
/* The kernel's UAPI value (include/uapi/linux/in.h, Linux 5.6), for libc headers that lack it. */
static const int JN_IPPROTO_MPTCP = 262;
#  endif
#  if defined(IPPROTO_SMC)
static const int JN_IPPROTO_SMC = IPPROTO_SMC;
#  else
/* The kernel's UAPI value (include/uapi/linux/in.h, Linux 6.11). */
static const int JN_IPPROTO_SMC = 256;
#  endif
#  if defined(AF_SMC)
static const int JN_AF_SMC = AF_SMC;
#  else
/* The kernel's UAPI value (include/linux/socket.h, Linux 4.11). */
static const int JN_AF_SMC = 43;
#  endif
static const int JN_SECCOMP_DATA_NR = offsetof(struct seccomp_data, nr);
static const int JN_SECCOMP_DATA_ARCH = offsetof(struct seccomp_data, arch);
#  if __BYTE_ORDER == __LITTLE_ENDIAN
static const int JN_SECCOMP_DATA_ARG0_LO = offsetof(struct seccomp_data, args[0]);
static const int JN_SECCOMP_DATA_ARG2_LO = offsetof(struct seccomp_data, args[2]);
#  else
static const int JN_SECCOMP_DATA_ARG0_LO = offsetof(struct seccomp_data, args[0]) + 4;
static const int JN_SECCOMP_DATA_ARG2_LO = offsetof(struct seccomp_data, args[2]) + 4;
#  endif
static const unsigned int JN_SECCOMP_RET_ALLOW = SECCOMP_RET_ALLOW;
static const unsigned int JN_SECCOMP_RET_ERRNO = SECCOMP_RET_ERRNO;
static const unsigned int JN_SECCOMP_RET_DATA = SECCOMP_RET_DATA;
static const int JN_SECCOMP_SET_MODE_FILTER = SECCOMP_SET_MODE_FILTER;
static const int JN_SECCOMP_GET_ACTION_AVAIL = SECCOMP_GET_ACTION_AVAIL;
#  if defined(SECCOMP_FILTER_FLAG_TSYNC_ESRCH)
/* TSYNC_ESRCH: a thread that cannot take the filter is -1/ESRCH, not its thread id. */
static const unsigned int JN_SECCOMP_FILTER_FLAG_TSYNC = SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
#  else
static const unsigned int JN_SECCOMP_FILTER_FLAG_TSYNC = SECCOMP_FILTER_FLAG_TSYNC;
#  endif
static const int JN_BPF_JMP = BPF_JMP;
static const int JN_BPF_JEQ = BPF_JEQ;
static const int JN_BPF_JGE = BPF_JGE;
static const int JN_BPF_K = BPF_K;
#else
static const int JN_HAS_SECCOMP = 0;
static const unsigned int JN_SECCOMP_AUDIT_ARCH = 0;
static const unsigned int JN_SECCOMP_X32_SYSCALL_BIT = 0;
static const int JN_SECCOMP_NR_SOCKET = -1;
static const int JN_SECCOMP_NR_SOCKETCALL = -1;
static const int JN_SECCOMP_NR_IO_URING_SETUP = -1;
static const int JN_SECCOMP_SYS_SOCKET = 0;
static const int JN_IPPROTO_MPTCP = 0;
static const int JN_IPPROTO_SMC = 0;
static const int JN_AF_SMC = 0;
static const int JN_SECCOMP_DATA_NR = 0;
static const int JN_SECCOMP_DATA_ARCH = 0;
static const int JN_SECCOMP_DATA_ARG0_LO = 0;
static const int JN_SECCOMP_DATA_ARG2_LO = 0;
static const unsigned int JN_SECCOMP_RET_ALLOW = 0;
static const unsigned int JN_SECCOMP_RET_ERRNO = 0;
static const unsigned int JN_SECCOMP_RET_DATA = 0;
static const int JN_SECCOMP_SET_MODE_FILTER = 0;
static const int JN_SECCOMP_GET_ACTION_AVAIL = 0;
static const unsigned int JN_SECCOMP_FILTER_FLAG_TSYNC = 0;
static const int JN_BPF_JMP = 0;
static const int JN_BPF_JEQ = 0;
static const int JN_BPF_JGE = 0;
static const int JN_BPF_K = 0;
#endif
"""
