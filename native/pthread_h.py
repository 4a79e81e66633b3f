"""Declarations from <pthread.h>: pthread_t, the thread inside accept(2) that a close() signals.

cffi only needs its size and alignment, which the compiler gives: a struct with no
named fields stands for it (on glibc it is an integer, on Darwin a pointer), so that
``struct jn_desc`` (native/src/janus_net.h) can hold one by value. Python never reads it.
"""

INCLUDES = """
#include <pthread.h>
"""

TYPES = """
typedef struct { ...; } pthread_t;
"""

FUNCTIONS = ""

CUSTOMIZATIONS = ""
